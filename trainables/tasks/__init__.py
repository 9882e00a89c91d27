"""The tasks, one module each: NAME.py defines the task `python -m search NAME` runs, as `TASK`
(a trainables.task.Task), and says in its docstring's first line what it does. A new task is a new
module here plus its space file, spaces/NAME.yaml; search/tasks.py finds it.
"""
