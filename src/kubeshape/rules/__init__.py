"""Rules: pure functions over the inventory, one module per family (KS1xx..KS7xx)."""
