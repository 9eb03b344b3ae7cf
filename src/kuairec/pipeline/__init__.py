"""The main job (``kuairec run``): configuration, tuning, fitting, evaluation, the run folder.

Data flows one way: ``cli -> pipeline -> {report, eda} -> models -> evaluation -> data``.
"""
