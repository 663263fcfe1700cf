"""``kubeshape fix``: findings with a machine fix become a plan of file edits, one commit and cluster changes."""
