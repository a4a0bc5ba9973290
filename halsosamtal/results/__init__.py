"""Clinical rule sets applied when an EHR posts a health talk's results: SCORE2, living habits, ranges."""
