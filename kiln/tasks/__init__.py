"""Tasks: one folder per kind of job (image, ...), behind the contract in kiln/tasks/base.py."""

from kiln.tasks.base import TASKS, Task, TaskInfo, get_task, infer_task, register_task, resolve_task, task_names

__all__ = ["TASKS", "Task", "TaskInfo", "get_task", "infer_task", "register_task", "resolve_task", "task_names"]
