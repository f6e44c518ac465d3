"""Stage ``simulate``: run the listening world under the logging policy; write raw logs and the truth."""
