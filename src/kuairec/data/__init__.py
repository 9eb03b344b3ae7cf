"""The data layer: files -> validated frames -> a typed dataset object."""
