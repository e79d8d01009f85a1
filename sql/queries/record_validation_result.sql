-- One expectation's outcome, pass or fail, kept in validation_results (sql/schema/003) for the
-- Validation view and the snapshot's asset event; the id is what its failing keys
-- (validation_failing_keys, COPY'd next by streamflow.validation_outcomes.record_outcomes) refer to.
-- kwargs, samples and figures arrive as JSON text.
INSERT INTO validation_results (run_id, month, as_of, table_name, expectation, column_name, kwargs, success,
                                element_count, unexpected_count, unexpected_percent, samples, error,
                                expectation_type, why, severity, figures)
VALUES (%(run_id)s, %(month)s, %(as_of)s, %(table_name)s, %(expectation)s, %(column_name)s, %(kwargs)s::jsonb,
        %(success)s, %(element_count)s, %(unexpected_count)s, %(unexpected_percent)s, %(samples)s::jsonb,
        %(error)s, %(expectation_type)s, %(why)s, %(severity)s, %(figures)s::jsonb)
RETURNING id
