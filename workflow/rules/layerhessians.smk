"""Study `layerhessians`: rules are added by its issue."""
