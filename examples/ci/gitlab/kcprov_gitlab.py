"""GitLab API steps of the kcprov pipeline (.gitlab-ci.yml), with the standard library only.

  python kcprov_gitlab.py note plan.md        post (or update) the plan as a merge request note
  python kcprov_gitlab.py fetch-plan plan.json  download the reviewed plan of the merged MR

The job token cannot write notes or list a merge request's pipelines, so both steps use
KCPROV_GITLAB_TOKEN: a project access token (scope `api`, the lowest role that may comment on merge
requests), a masked CI/CD variable; not a protected one, as merge request pipelines run on
unprotected branches. Everything else comes from GitLab's predefined CI variables.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request

MARKER = "<!-- kcprov-plan -->"  # the first line of every `kcprov plan --format markdown`
PLAN_JOB = "kcprov-plan"


def api(method: str, path: str, body: dict | None = None, raw: bool = False):
    request = urllib.request.Request(
        f"{os.environ['CI_API_V4_URL']}/projects/{os.environ['CI_PROJECT_ID']}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"PRIVATE-TOKEN": os.environ["KCPROV_GITLAB_TOKEN"], "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        data = response.read()
    return data if raw else json.loads(data)


def note(markdown_file: str) -> None:
    """Post the plan on the merge request, or update the note an earlier push made."""
    iid = os.environ["CI_MERGE_REQUEST_IID"]
    body = open(markdown_file, encoding="utf-8").read() + (
        f"\nPlanned at {os.environ['CI_COMMIT_SHA']} ([job]({os.environ['CI_JOB_URL']})). On merge, the "
        "kcprov-apply job applies exactly this saved plan; if the realm or the files changed since, "
        "kcprov refuses it as stale.\n")
    notes = api("GET", f"/merge_requests/{iid}/notes?per_page=100&sort=desc")
    old = next((n for n in notes if n["body"].startswith(MARKER)), None)
    if old:
        api("PUT", f"/merge_requests/{iid}/notes/{old['id']}", {"body": body})
    else:
        api("POST", f"/merge_requests/{iid}/notes", {"body": body})


def fetch_plan(target: str) -> None:
    """Download plan.json of the plan job of the newest pipeline of the MR this commit merged.

    Only the newest: a plan of an earlier commit of the MR is not what was last reviewed (and
    kcprov would refuse it as stale anyway).
    """
    sha = os.environ["CI_COMMIT_SHA"]
    merged = [mr for mr in api("GET", f"/repository/commits/{sha}/merge_requests") if mr["state"] == "merged"]
    if not merged:
        sys.exit(f"{sha} came from no merged merge request: no reviewed plan to apply")
    iid = merged[0]["iid"]
    pipelines = api("GET", f"/merge_requests/{iid}/pipelines")  # newest first
    jobs = api("GET", f"/pipelines/{pipelines[0]['id']}/jobs?scope=success") if pipelines else []
    job = next((j for j in jobs if j["name"] == PLAN_JOB), None)
    if job is None:
        sys.exit(f"the last pipeline of merge request !{iid} has no successful {PLAN_JOB} job")
    with open(target, "wb") as out:
        out.write(api("GET", f"/jobs/{job['id']}/artifacts/{urllib.parse.quote(target)}", raw=True))


if __name__ == "__main__":
    commands = {"note": note, "fetch-plan": fetch_plan}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2])
