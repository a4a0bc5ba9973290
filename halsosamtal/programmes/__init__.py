"""Programme years: target ages, rates and reminder rules, one row per year."""
