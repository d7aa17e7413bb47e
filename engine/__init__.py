"""engine: the detcli library (data, models, training, metrics, export, inference, run history).

Never imports click or textual: usable from plain Python.
"""
