"""Print a small report about the host the job runs on and record it as outputs."""
import json
import os
import platform

with open(os.environ["HRW_PARAMETERS_FILE"]) as handle:
    parameters = json.load(handle)
verbose = parameters.get("verbose", False)
print(f"host: {platform.node()}")
print(f"python: {platform.python_version()}")
if verbose:
    print(f"platform: {platform.platform()}")
with open(os.environ["HRW_OUTPUTS"], "a") as outputs:
    outputs.write(f"host={platform.node()}\n")
    outputs.write(f"python={platform.python_version()}\n")
