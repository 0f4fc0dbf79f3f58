//! Instance expansion: stored singles and series masters (with exceptions and cancelled
//! occurrences) → the instances a calendarView shows. (Skeleton — OWNER: graph-events.)
