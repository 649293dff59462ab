"""DIP (按病种分值付费): packet catalogues, matching, scoring and supervision (issue 19)."""
