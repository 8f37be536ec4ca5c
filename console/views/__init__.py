"""Console views, one module per area.

Other areas add their own module here (e.g. ``console/views/repos.py`` for git
repositories) and their routes in ``console/urls.py``.
"""
