"""The ids the DAGs, the Validation view, the stack tooling and the tests share: one spelling each.

Plain strings, no imports: the pipeline (a link in the validate log), the Airflow seam
(`airflow_glue`), the plugin and `streamflow_dev.stack` all read them from here.
"""

#: The ingest DAG (also its file's stem, dags/ingest_month.py) and the DAG its snapshot assets schedule.
DAG_ID = "ingest_month"
TRAINING_DAG_ID = "training_set"
#: The task group of the six validations: their task ids are `validate.<table>`.
VALIDATE_GROUP_ID = "validate"
VALIDATE_TASK_PREFIX = f"{VALIDATE_GROUP_ID}."
#: Where the validation view plugin mounts its FastAPI app in the API server, and the page's route in it:
#: `/streamflow/validation/<dag_id>/<run_id>[/<task_id>]`.
URL_PREFIX = "/streamflow"
VALIDATION_ROUTE = "/validation"
