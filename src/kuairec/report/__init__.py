"""Reports: the main job's benchmark report and the shared HTML helpers."""
