"""The handler contract: the names and limits the functions and the infrastructure must agree on.

One module, imported by the handlers and by the library (`fraud_pipeline.defaults`,
`fraud_pipeline.wiring`): the event bus's sources and detail types (the review rule matches
them), the archive's prefixes (IAM grants, lifecycle rules and the S3 trigger name them),
the size limits (API Gateway's request models and the docs state them) and the environment
variables the component sets. It lives in `handlers` because the Lambda package must stand
alone; it imports nothing.
"""

# --- events on the bus --------------------------------------------------------
DECISION_EVENT_SOURCE = "fraud-pipeline.detection"
DECISION_EVENT_DETAIL_TYPE = "FraudDecision"
#: Applied labels (API, bulk files, review outcomes) are published on the same bus.
LABEL_EVENT_SOURCE = "fraud-pipeline.labels"
LABEL_EVENT_DETAIL_TYPE = "FraudLabel"

# --- archive prefixes ---------------------------------------------------------
ARCHIVE_HIGH_RISK_PREFIX = "high-risk/"
ARCHIVE_REJECTED_PREFIX = "rejected/"
#: Bulk label files land here (an operator or a chargeback feed); the label-ingest function is notified.
ARCHIVE_LABELS_PREFIX = "labels/"
#: Where label-ingest quarantines the rows it refused (inside the rejected/ prefix).
ARCHIVE_REJECTED_LABELS_PREFIX = "rejected/labels/"
#: Model artifacts detection may load (the `model` / `model-shadow` parameters name one).
ARCHIVE_MODELS_PREFIX = "models/"

# --- size limits (bytes) --------------------------------------------------------
#: POST /transactions body, and one Kinesis record: a transaction is a few hundred bytes.
MAX_TRANSACTION_BYTES = 64 * 1024
#: POST /transactions/{transaction_id}/label body.
MAX_LABEL_BODY_BYTES = 16 * 1024
#: One line (row) of a bulk label file.
MAX_LABEL_LINE_BYTES = 64 * 1024

# --- environment variables the component sets (fraud_pipeline/wiring.py says who gets which) ----
TABLE_NAME = "TABLE_NAME"
FEATURES_TABLE_NAME = "FEATURES_TABLE_NAME"
ALERT_QUEUE_URL = "ALERT_QUEUE_URL"
ARCHIVE_BUCKET = "ARCHIVE_BUCKET"
EVENT_BUS_NAME = "EVENT_BUS_NAME"
ALERT_TOPIC_ARN = "ALERT_TOPIC_ARN"
ML_ENDPOINT_PARAM = "ML_ENDPOINT_PARAM"
MODEL_PARAM = "MODEL_PARAM"
MODEL_SHADOW_PARAM = "MODEL_SHADOW_PARAM"
LISTS_PARAM = "LISTS_PARAM"
TEMPLATES_PARAM = "TEMPLATES_PARAM"
CARD_TOKEN_KEY_PARAM = "CARD_TOKEN_KEY_PARAM"
RULES_JSON = "RULES_JSON"
ENVIRONMENT = "ENVIRONMENT"
TRANSACTION_RETENTION_DAYS = "TRANSACTION_RETENTION_DAYS"

#: Every variable of the contract (wiring.CONTRACT says which function gets which).
VARIABLES = (TABLE_NAME, FEATURES_TABLE_NAME, ALERT_QUEUE_URL, ARCHIVE_BUCKET, EVENT_BUS_NAME, ALERT_TOPIC_ARN,
             ML_ENDPOINT_PARAM, MODEL_PARAM, MODEL_SHADOW_PARAM, LISTS_PARAM, TEMPLATES_PARAM, CARD_TOKEN_KEY_PARAM,
             RULES_JSON, ENVIRONMENT, TRANSACTION_RETENTION_DAYS)
