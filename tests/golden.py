"""The real months' figures that tests compare against, kept in one place.

They are facts of the shipped extracts (data/seeds/, provenance in data/seeds/SOURCE.md), not
results of this project's code: every month has 7043 users, and each of its six files one row per
user; the churners are the users whose churn_label is true in that month's labels.csv.
"""

ROWS = 7043
CHURNERS = {"2024-01-31": 1869, "2024-02-29": 1701}
JANUARY_CHURNERS, FEBRUARY_CHURNERS = CHURNERS["2024-01-31"], CHURNERS["2024-02-29"]
#: subscriptions rows whose plan_stream_tv is empty (NULL once loaded): 1526 in either month.
PLAN_STREAM_TV_NULL = 1526
