"""Study `hessianflow`: rules are added by its issue."""
