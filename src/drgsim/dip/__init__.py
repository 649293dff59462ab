"""DIP (按病种分值付费): catalogue building, matching, auxiliary catalogues, scoring."""
