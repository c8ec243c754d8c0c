"""The promises that keep a fix from making things worse: secrets masked in every output,
reviewed plans saved and applied exactly (`planfile` the file, `saved` the drift checks),
the audit log, and undoing a run (`rollback`).

It imports the model, connections and events, never the executor or the steps.
"""
