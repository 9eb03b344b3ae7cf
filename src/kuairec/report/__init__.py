"""Rendering of the main job's results: report.html / report.md and their plots.

Only what renders lives here; the job itself is :mod:`kuairec.pipeline`.
"""
