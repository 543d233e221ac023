"""The bottom layer: configuration and task.yaml models, the catalog of every stored key and record,
storage (local folder or S3), metrics, errors, and how others' text is made inert."""
