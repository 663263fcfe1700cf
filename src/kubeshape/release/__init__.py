"""``kubeshape release`` and ``kubeshape history``: tag from git (tagging), build or copy and push (builders,
artifact, push), edit the manifest in place (edit, yamltext, targets), commit (gitrepo), deploy and watch
(kube, rollout), roll back (rollback), all put together by ``workflow``; revisions and the last known good
(history)."""
