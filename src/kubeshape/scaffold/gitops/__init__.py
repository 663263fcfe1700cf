"""``kubeshape init gitops``: one kustomize base per service, and the Flux objects that apply them.

Modules: ``sourcefiles`` (a manifest file as documents), ``fields`` (what the API server adds), ``overlay`` (live
values onto a round-trip document), ``gitinfo`` (git), ``services`` (which definition wins, what belongs
together), ``layout`` (files of the new tree), ``plan`` (everything above, one plan), ``text`` (the plan as
printed), ``mask`` (secret values out of diffs), ``execute`` (``--apply``).
"""
