"""The tasks and what they train on: each task is one `Task` (trainables/task.py) defined in
trainables/tasks/NAME.py; the one shared epoch loop (`loop`) and trainable (`trial`); per family
the data, models and metrics (`images`, `backbones`, `image_classifier`, `image_task`; `text_data`,
`text_models`, `text_batches`, `text_task`). Imports nothing of search/.
"""
