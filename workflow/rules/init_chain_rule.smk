"""Study `init_chain_rule`: rules are added by its issue."""
