"""What every long stage and every HTML page share: the progress display, resource
measurement, the HTML helpers and the reports' figure record (``display.figure``).
Imports nothing of kuairec but the leaf modules (``errors``, ``atomic``)."""
