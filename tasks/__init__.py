"""Steps of the pipeline: plain typed functions, and the Prefect tasks that wrap them."""
