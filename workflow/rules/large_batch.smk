"""Study `large_batch`: rules are added by its issue."""
