"""Serving a run's saved models over HTTP (``kuairec serve``).

``state`` loads a run folder (data, every saved model, the catalogue), ``scoring`` holds
what each endpoint computes, ``schemas`` the request and response bodies, ``app`` the
FastAPI factory :func:`~kuairec.serve.app.create_app`, ``server`` the process that
listens (uvicorn, one or more forked workers) and ``static/`` the web page. FastAPI and
uvicorn are imported only by ``app`` and ``server``: importing this package loads
nothing.
"""
