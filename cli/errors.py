"""How the CLI reports an XsearchError: one line on stderr (or a JSON object on stdout with --json), an exit code,
and the flag advice that lower layers must not give (they do not know they run under a CLI).

``ADVICE`` maps an error code to what a CLI user can do about it; ``{param}`` fields come from the error's params.
An error without CLI advice shows its own ``hint`` (what the layer that raised it knows: a store names its server),
so nothing here depends on which store, model or medium raised it.
"""

from __future__ import annotations

from xsearch.core.errors import XsearchError

ADVICE: dict[str, str] = {
    "collection.missing": "create it with `xsearch index <folder> -c {collection}`",
    "collection.model_mismatch": "re-index with `xsearch index <folder> --rebuild` or use a new collection",
    "collection.dim_mismatch": "re-index with `xsearch index <folder> --rebuild` or use a new collection",
    "collection.damaged": "rebuild it with `xsearch index <folder> -c {collection} --rebuild`",
    "collection.vectors_damaged": "run `xsearch index` on your folders again, which re-embeds the files it held",
    "collection.vectors_missing": "run `xsearch index` on your folders to re-embed the files it held",
    "collection.newer_format": "upgrade xsearch to open it",
    "collection.old_schema": "run `xsearch index` once with write access to upgrade it",
    "collection.locked": "wait for it to finish (or stop it) and try again, or pass --wait SECONDS",
    "collection.read_only": "search works; to change it, make the collection writable or copy it somewhere writable",
    "collection.empty": "add files with `xsearch index <folder>`",
    "collection.no_items": "index some {modality} files first",
    "collection.exists": "use it as it is, or choose another path with -c",
    "collection.unsafe_file": "remove {path} and run `xsearch index` on your folders again "
                              "(xsearch never follows links inside a collection)",
    "collection.disk_full": "free some space on that disk and run the command again; the last commit is intact",
    "collection.permission_denied": "give your user access to {collection} (read to search, write to index)",
    "collection.io_error": "check the disk holding {collection}",
    "collection.not_a_folder": "choose another path with -c (`xsearch index` creates the folder)",
    "usage.k_too_large": "use -k {n} or less",
    "copy.destination_not_empty": "pass --replace to overwrite it",
    "collection.incomplete": "run `xsearch copy {source} {collection}` again (it starts over), or delete it",
    "remove.too_many": "if that is what you mean, run it again with --force",
    "store.unsupported_index": "pass one of those with --index-factory",
    "store.keyword_unsupported": "use a local collection (-c DIR) or milvus-lite:PATH.db for them (docs/ocr.md)",
    "store.keyword_index_missing": "run `xsearch index <folder> -c {collection}` once (docs/ocr.md)",
    "store.auth": "pass the right token with --store-token or XSEARCH_STORE_TOKEN",
    "train.diverged": "try a lower --lr",
    "model.bad_spec": "see `xsearch models` for the accepted forms",
    "model.unknown_arch": "`xsearch models` lists the openclip:<arch>:<tag> choices",
    "model.unknown_tag": "see `xsearch models`",
    "model.no_cuda": "use --device cpu",
    "model.out_of_memory": "run with --device cpu",
}


#: How a query of a modality is passed where it is not ``--MODALITY`` (``--image``, ``--audio``, ``--video``).
QUERY_FLAGS = {"text": "a text argument"}

#: Messages that read better naming the flag the user typed; ``{param}`` fields come from the error's params.
FLAG_MESSAGES: dict[str, str] = {
    "usage.bad_k": "-k must be at least 1, not {k}",
    "usage.k_too_large": "-k {k} is larger than the collection: it holds {n} {modality} file(s)",
    "usage.bad_target": "--to {target!r}: choose {choices}",
    "usage.bad_fusion": "unknown --fusion {fusion!r}; choose {choices}",
    "usage.bad_mode": "unknown --mode {mode!r}; choose {choices}",
    "usage.weights_count": "--weight has {given} value(s) but there are {queries} queries",
    "usage.bad_weights": "--weight {text!r}: use comma-separated finite numbers such as 0.7,0.3",
    "usage.bad_threshold": "--threshold must be a finite number{range}, not {value}",
    "query.none": 'no query: give text ("a red circle"), --image FILE or --audio FILE',
    "query.wrong_modality": "{path} is {actual}, not {expected}; pass it with {flag}",
    "usage.bad_search_param": "{flag} must be a whole number from 1 to 65536, not {value}",
    "train.bad_value": "{flag} must be {rule}, not {value}",
}

#: The CLI option behind an error's ``name`` param where it is not simply ``--name-with-dashes``.
OPTION_FLAGS: dict[str, str] = {
    "efSearch": "--ef-search",
    "nprobe": "--nprobe",
    "files_per_batch": "--batch-files",
    "wait_s": "--wait",
    "out_dir": "--out",
    "k": "-k",
}


def advice(error: XsearchError) -> str:
    """The CLI advice for ``error``, else the error's own hint ('' when there is neither); missing params leave the
    placeholder's name."""
    template = ADVICE.get(error.code, "")
    if not template:
        return error.hint
    params = _Defaults(error.params)
    return template.format_map(params)


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def cli_message(error: XsearchError) -> str:
    """The one line the CLI prints: the error's sentence (in flag terms where it has them), then its advice."""
    template = FLAG_MESSAGES.get(error.code)
    params = _Defaults(error.params)
    if "actual" in params:
        params["flag"] = QUERY_FLAGS.get(params["actual"], f"--{params['actual']}")
    message = template.format_map(params) if template else error.message
    name = str(params.get("name", ""))
    if not template and error.code == "usage.bad_value" and "flag" in params and message.startswith(name + " "):
        message = f"{params['flag']}{message[len(name):]}"  # "wait_s must be ..." → "--wait must be ..."
    message = message.rstrip().rstrip(".")
    extra = advice(error)
    return f"{message}; {extra}." if extra else f"{message}."
