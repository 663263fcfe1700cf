"""Sources load the world (repo, cluster bundle or live API, registry, git) into one inventory."""
