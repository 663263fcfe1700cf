"""Commands that change things (registry prune, ...): pure planning apart from the side effects."""
