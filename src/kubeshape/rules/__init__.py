"""Rules: pure functions over the inventory, one module per family (KS1xx..KS7xx)."""

# The module (under kubeshape.rules) that registers each family's rules, so that looking one rule up imports
# that module only; all_rules() still imports every module it finds. tests/test_cli_startup.py checks this
# against the registry.
FAMILY_MODULES: dict[int, str] = {
    1: "images",
    2: "manifests",
    3: "pipeline",
    4: "registry",
    5: "stability",
    6: "orphans",
    7: "observability",
}
