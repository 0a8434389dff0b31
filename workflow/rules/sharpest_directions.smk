"""Study `sharpest_directions`: rules are added by its issue."""
