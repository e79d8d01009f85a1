-- Point-in-time training set: every feature snapshot and the label at one as_of, per user.
-- Reads snapshot tables only, so what it returns for a date never changes when later months load.
-- Inner joins: a user missing from one snapshot at that as_of is left out rather than given NULLs
-- (validation makes every table cover every user, and a month is stamped whole before the next).
-- Example: SELECT count(*) FILTER (WHERE churn_label) FROM training_set('2024-01-31');  -- 1869
CREATE OR REPLACE FUNCTION training_set(snapshot_as_of DATE)
RETURNS TABLE (
  user_id TEXT, as_of DATE,
  months_active INT, monthly_fee NUMERIC, paperless_billing BOOLEAN,
  plan_stream_tv BOOLEAN, plan_stream_movies BOOLEAN, net_service TEXT,
  watch_hours_30d NUMERIC, avg_session_mins_7d NUMERIC, unique_devices_30d INT,
  skips_7d INT, rebuffer_events_7d INT,
  failed_payments_90d INT,
  support_tickets_90d INT, ticket_avg_resolution_hrs_90d NUMERIC,
  churn_label BOOLEAN
)
LANGUAGE sql STABLE AS $$
  SELECT lab.user_id, lab.as_of,
         sub.months_active, sub.monthly_fee, sub.paperless_billing,
         sub.plan_stream_tv, sub.plan_stream_movies, sub.net_service,
         usg.watch_hours_30d, usg.avg_session_mins_7d, usg.unique_devices_30d,
         usg.skips_7d, usg.rebuffer_events_7d,
         pay.failed_payments_90d,
         sup.support_tickets_90d, sup.ticket_avg_resolution_hrs_90d,
         lab.churn_label
  FROM labels_snapshots AS lab
  JOIN subscriptions_profile_snapshots AS sub ON sub.user_id = lab.user_id AND sub.as_of = lab.as_of
  JOIN usage_agg_30d_snapshots AS usg ON usg.user_id = lab.user_id AND usg.as_of = lab.as_of
  JOIN payments_agg_90d_snapshots AS pay ON pay.user_id = lab.user_id AND pay.as_of = lab.as_of
  JOIN support_agg_90d_snapshots AS sup ON sup.user_id = lab.user_id AND sup.as_of = lab.as_of
  WHERE lab.as_of = snapshot_as_of
$$;
