"""What every long stage and every HTML page share: the progress display, resource
measurement and the HTML helpers. Imports nothing of kuairec but the leaf modules
(``errors``, ``atomic``)."""
