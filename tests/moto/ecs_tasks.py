"""moto_server with ECS tasks shaped as real ECS reports them.

DESIGN §10: where a test needs real ECS behaviour, run moto with the model
patched rather than weaken the test. moto 5.2 answers RunTask and
DescribeTasks with a container's `cpu` and `memory` as numbers, where the ECS
API has strings (so the AWS SDKs refuse the whole answer), and lets every
container exit 0. Here:

* `cpu` and `memory` of a task's containers are strings, as ECS sends them;
* a container whose command override holds `ECSYNC_TEST_EXIT=<n>` exits with
  `n` (and a reason), so a failing one-off task can be tested end to end.

Same arguments as moto_server (`-H HOST -p PORT`).
"""

import sys

from moto.ecs import models
from moto.server import main

_container_init = models.Container.__init__


def _container(self, task_def):
    _container_init(self, task_def)
    for attr in ("cpu", "memory"):
        value = getattr(self, attr, None)
        if value is not None:
            setattr(self, attr, str(value))


models.Container.__init__ = _container

_task_init = models.Task.__init__


def _task(self, *args, **kwargs):
    _task_init(self, *args, **kwargs)
    for override in (self.overrides or {}).get("containerOverrides", []):
        for word in override.get("command") or []:
            if isinstance(word, str) and word.startswith("ECSYNC_TEST_EXIT="):
                code = int(word.split("=", 1)[1])
                for container in self.containers:
                    if container.name == override.get("name"):
                        container.exitCode = code
                        container.reason = f"exited {code} (test)"


models.Task.__init__ = _task

if __name__ == "__main__":
    main(sys.argv[1:])
