"""The two-stage recommender: retrievers propose candidates, a LightGBM LambdaRank model
orders them (:mod:`.model`); trained leakage-free on a cut of the training log at T.

Modules: ``split`` (the cut at T), ``retrieval`` (stage one), ``item_features`` and
``features`` (what the ranker sees, per time window), ``ranker`` (LightGBM, search,
early stopping), ``training`` (the fit's steps), ``summary`` (typed accounts for the
report: the fit summary and the recall ceiling), ``model`` (the Recommender).
LightGBM is imported only inside the functions that train or load a ranker.
"""
