# ruff: noqa: E501  (prose: the answers keep their paragraphs on one line, as models write them)
"""Realistic ranking tasks for the page tests and the docs/img screenshots: answers of 100-300
words with paragraphs, lists and code blocks, as chat models write them."""
from __future__ import annotations

import io
import json

from annotation.services.importing import prompts_import

INSTRUCTIONS = """Rank the answers **from best to worst**.

- Prefer answers that are *correct*, then helpful, then concise.
- Check code: an answer with a bug is worse than a shorter correct one.
- Flag anything harmful, wrong or off-topic.
"""

DEDUP_PROMPT = "How do I remove duplicates from a Python list but keep the original order? Explain the options."

DEDUP_ANSWERS = [
    """The simplest way that keeps the order is `dict.fromkeys`, because dictionaries remember insertion order (guaranteed since Python 3.7):

```python
items = [3, 1, 3, 2, 1, 5]
unique = list(dict.fromkeys(items))
print(unique)  # [3, 1, 2, 5]
```

This runs in linear time and is the idiomatic answer for hashable items.

If your items are **not hashable** (for example lists or dicts), keep a list of what you have seen instead. It is slower, quadratic in the worst case, but it works for anything that supports `==`:

```python
def unique_in_order(values):
    seen = []
    out = []
    for value in values:
        if value not in seen:
            seen.append(value)
            out.append(value)
    return out
```

Avoid `list(set(items))` when the order matters: a set does not keep it, so the result can come back in any order.""",
    """Use a set:

```python
unique = list(set(items))
```

Sets cannot contain duplicates, so converting the list to a set and back removes them. This is the fastest and shortest way to do it in Python and works for any list of numbers or strings.

If you need it sorted you can also write `sorted(set(items))`, which gives you the unique values in ascending order.""",
    """There are a few common approaches.

1. **A loop with a seen-set.** Walk the list once and keep the items you have not met before:

```python
seen = set()
unique = []
for x in items:
    if x not in seen:
        seen.add(x)
        unique.append(x)
```

2. **`dict.fromkeys`**, the one-liner version of the same idea: `list(dict.fromkeys(items))`.

3. **pandas**, if the data is already in a DataFrame: `pd.Series(items).drop_duplicates().tolist()`.

All three keep the first occurrence of each value and the original order. The first two need hashable items; for unhashable ones (lists of lists, say) convert each item to a tuple first, or compare with `==` against a list of seen items.""",
    """You can't really do that in Python without writing your own sorting algorithm. Lists don't have a built-in way to remove duplicates, so the usual approach is to sort the list first and then remove neighbours that are equal:

```python
items.sort()
result = [items[0]]
for x in items[1:]:
    if x != result[-1]:
        result.append(x)
```

This changes the order, but the order of a list is usually not important anyway.""",
]

HTTP_PROMPT = "Explain the difference between HTTP 401 and 403, with an example of when an API should return each."

HTTP_ANSWERS = [
    """**401 Unauthorized** means the server does not know who you are: the request carried no credentials, or credentials it could not verify (an expired token, a wrong password). The response should include a `WWW-Authenticate` header saying how to authenticate, and the client can fix it by logging in and retrying.

**403 Forbidden** means the server knows exactly who you are, and you are not allowed to do this. Logging in again will not help.

Examples for a project API:

- `GET /projects/7/` with no `Authorization` header: **401**.
- The same request with a valid token of a user who is an *annotator* in project 7, asking to export its data, which only engineers may do: **403**.
- A valid token of a user who is not a member of project 7 at all: many APIs answer **404** here instead of 403, so that outsiders cannot even learn that the project exists.

A short rule: 401 is "who are you?", 403 is "I know you, and no".""",
    """401 and 403 are both errors about permissions. 401 means you are not allowed and 403 means the page is forbidden. In practice they are interchangeable and most APIs just use 403 for everything because it is clearer for users.

An example would be a login page: if the password is wrong you return 403 Forbidden.""",
    """HTTP 401 (Unauthorized) is returned when authentication is required and has failed or has not yet been provided. HTTP 403 (Forbidden) is returned when the server understood the request and the client is authenticated, but the client does not have permission to access the resource.

For example, if a user tries to access `/admin` without logging in, the API should return 401. If a logged-in regular user tries to access `/admin`, the API should return 403.

Note that despite its name, 401 is about *authentication*, while 403 is about *authorization*.""",
]

CONVERSATION = [
    {"role": "system", "content": "You are a careful assistant for a data team."},
    {"role": "user", "content": "What does `GROUP BY` do in SQL?"},
    {"role": "assistant", "content": "It groups rows that share the values of the listed columns, so that aggregates such as `count(*)` or `sum(x)` are computed per group."},
    {"role": "user", "content": "And how is `HAVING` different from `WHERE`? Give a query."},
]

SQL_ANSWERS = [
    """`WHERE` filters **rows before** they are grouped; `HAVING` filters **groups after** the aggregates are computed, so only `HAVING` can use `count(*)`, `sum(...)` and the like.

```sql
SELECT customer_id, count(*) AS orders
FROM orders
WHERE created_at >= '2024-01-01'   -- rows: this year's orders only
GROUP BY customer_id
HAVING count(*) >= 5;              -- groups: customers with five or more
```

Here `WHERE` throws away old orders first, then the rows left are grouped by customer, and `HAVING` keeps the customers whose group has at least five rows.""",
    """`HAVING` is just another way to write `WHERE`; you can use either one. Some databases prefer `HAVING` for performance reasons.

```sql
SELECT * FROM orders HAVING total > 100;
```""",
    """Both filter, at different steps of the query:

1. `FROM` / `JOIN` produce rows,
2. `WHERE` removes rows,
3. `GROUP BY` groups what is left,
4. `HAVING` removes groups,
5. `SELECT` and `ORDER BY` shape the result.

So a condition on a single row's column goes in `WHERE`, and a condition on an aggregate goes in `HAVING`, e.g. `HAVING sum(amount) > 1000`.""",
]


def import_realistic_tasks(project, *, repeat: int = 1) -> None:
    """Import the three realistic prompts (`repeat` times each, with distinct ids) with their answers."""
    lines = []
    for n in range(repeat):
        lines.append({"id": f"dedup-{n}", "prompt": DEDUP_PROMPT if n == 0 else f"{DEDUP_PROMPT} (variant {n})",
                      "responses": [{"content": a, "model": "secret-model-a"} for a in DEDUP_ANSWERS]})
        lines.append({"id": f"http-{n}", "prompt": HTTP_PROMPT if n == 0 else f"{HTTP_PROMPT} (variant {n})",
                      "responses": [{"content": a, "model": "secret-model-b"} for a in HTTP_ANSWERS]})
        lines.append({"id": f"sql-{n}", "messages": CONVERSATION if n == 0 else [*CONVERSATION[:-1], {"role": "user", "content": f"{CONVERSATION[-1]['content']} ({n})"}],
                      "responses": [{"content": a, "model": "secret-model-c"} for a in SQL_ANSWERS]})
    data = "\n".join(json.dumps(line) for line in lines).encode()
    prompts_import(project=project, fileobj=io.BytesIO(data), file_format="jsonl")
