-- Replaced by streamflow_assert_loadable (sql/functions/004_month_order.sql).
DROP FUNCTION IF EXISTS streamflow_assert_latest_month(DATE);
