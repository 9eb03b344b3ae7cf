"""kuairec: a measured recommender-system toolkit for the KuaiRec 2.0 dataset.

Heavy backends (torch, Spark, the web server) are imported only where used, so
``import kuairec`` stays fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
