"""Which account each amount is booked to: the mapping from categories and revenue sources to accounts, and the
accounts named by role (payable, receivable, cash, tax, FX gain and loss, rounding).

What fits a role, written once:

- `payable` a liability (what is owed for an expense, to its vendor or the employee who paid it);
- `receivable` and `cash` assets; `tax` a liability (tax collected, owed to the authority);
- `fx_gain` a revenue account, `fx_loss` an expense account; `rounding` either;
- `source` a revenue account (a revenue entry's source, or an invoice's customer, by name);
- `category` an expense account, or a revenue account for a revenue category (an expense only books to an expense
  account, revenue only to a revenue account, so one category name used by both kinds maps for one of them);
- `*` as a category is the expense account of every category not mapped, `*` as a source the revenue account of
  everything not mapped otherwise.

Lookups: an expense books to its category's account (when it is an expense account), else category `*`; revenue to
its source's account, else its category's (when it is a revenue account), else source `*`. An account in a mapping is
active, and stays so while mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.db import Tx
from domain.audit.service import AuditContext, record
from domain.errors import Conflict, InvalidState, ValidationFailed
from domain.ledger import repository as ledger
from domain.ledger.repository import AccountRow, MappedRow
from domain.ledger.schemas import MappingIn, MappingOut, MappingsOut

ANY = "*"
KEYED = ("category", "source")
FITS: dict[str, tuple[str, ...]] = {
    "category": ("expense", "revenue"),
    "source": ("revenue",),
    "payable": ("liability",),
    "receivable": ("asset",),
    "cash": ("asset",),
    "tax": ("liability",),
    "fx_gain": ("revenue",),
    "fx_loss": ("expense",),
    "rounding": ("expense", "revenue"),
}
_DEFAULT_FITS = {"category": ("expense",), "source": ("revenue",)}  # the `*` keys


def fitting(kind: str, key: str) -> tuple[str, ...]:
    """The account types a mapping of `kind` (and `key`) may name."""
    return _DEFAULT_FITS[kind] if key == ANY and kind in _DEFAULT_FITS else FITS[kind]


def named(kind: str, key: str) -> str:
    """A mapping as a person reads it: `category 'travel'`, `payable`."""
    return f"{kind} {key!r}" if kind in KEYED else kind


def normal_key(kind: str, key: str) -> str:
    """Categories and sources compare without case or surrounding spaces, as the entry list filters them."""
    return key.strip().lower() if kind in KEYED else key


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def check_fits(kind: str, key: str, account: AccountRow) -> None:
    """422 unless the account fits the mapping's role and is active."""
    allowed = fitting(kind, key)
    if account.type not in allowed:
        wanted = " or ".join(f"{_article(kind_of)} {kind_of}" for kind_of in allowed)
        raise ValidationFailed(
            f"{named(kind, key)} needs {wanted} account; {account.code} ({account.name}) is {_article(account.type)} "
            f"{account.type} account",
            field="mappings",
            kind=kind,
            key=key,
            account_code=account.code,
        )
    if not account.active:
        raise ValidationFailed(f"account {account.code} is inactive: it cannot be mapped", field="mappings",
                               account_code=account.code)  # fmt: skip


def mapping_out(row: MappedRow) -> MappingOut:
    account = row.account
    return MappingOut(kind=row.kind, key=row.key, account_code=account.code, account_name=account.name,  # type: ignore[arg-type]
                      account_type=account.type)  # type: ignore[arg-type]  # fmt: skip


async def read(tx: Tx) -> MappingsOut:
    return MappingsOut(mappings=[mapping_out(row) for row in await ledger.mappings(tx.sql)])


async def replace(tx: Tx, items: Sequence[MappingIn], context: AuditContext) -> MappingsOut:
    """The mapping becomes `items`, all checked first (422 naming the first that does not fit); audited with what it
    was and what it is."""
    pairs: dict[tuple[str, str], str] = {}
    for item in items:
        key = normal_key(item.kind, item.key)
        if item.kind in KEYED and not key:
            raise ValidationFailed(f"a {item.kind} mapping names its {item.kind} (or {ANY!r} for the rest)",
                                   field="mappings")  # fmt: skip
        if item.kind not in KEYED and key:
            raise ValidationFailed(f"a {item.kind} mapping has no key; leave it out", field="mappings")
        if (item.kind, key) in pairs:
            raise ValidationFailed(f"{named(item.kind, key)} is mapped twice", field="mappings")
        pairs[(item.kind, key)] = item.account_code
    await ledger.lock_mappings(tx.sql)
    accounts = await ledger.accounts_by_code(tx.sql, sorted(set(pairs.values())))
    for (kind, key), code in pairs.items():
        account = accounts.get(code)
        if account is None:
            raise ValidationFailed(f"{named(kind, key)}: there is no account {code}", field="mappings",
                                   account_code=code)  # fmt: skip
        check_fits(kind, key, account)
    before = await ledger.mappings(tx.sql)
    await ledger.replace_mappings(tx.sql, [(kind, key, accounts[code].id) for (kind, key), code in pairs.items()])
    after = await ledger.mappings(tx.sql)
    await record(tx.sql, context, "account_mappings.replaced", "account_mapping", None,
                 {"mappings": [_flat(before), _flat(after)]})  # fmt: skip
    return MappingsOut(mappings=[mapping_out(row) for row in after])


def _flat(rows: list[MappedRow]) -> list[str]:
    return [f"{named(row.kind, row.key)} -> {row.account.code}" for row in rows]


async def check_change(tx: Tx, before: AccountRow, after_type: str, after_active: bool) -> None:
    """409 when a change of a mapped account's type or active flag would leave a mapping that does not fit."""
    for kind, key in await ledger.roles_of(tx.sql, before.id):
        if after_type not in fitting(kind, key):
            raise InvalidState(f"account {before.code} is mapped as {named(kind, key)}, which needs "
                               f"{' or '.join(fitting(kind, key))}; change the mapping first",
                               kind=kind, key=key)  # fmt: skip
        if not after_active:
            raise InvalidState(f"account {before.code} is mapped as {named(kind, key)}; change the mapping before "
                               "deactivating it", kind=kind, key=key)  # fmt: skip


# --- the chart as the journals read it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Booked:
    """An account as a journal line names it."""

    code: str
    name: str
    tax_code: str


UNMAPPED = Booked("", "", "")  # stands in while a journal is built, so every missing account is found in one pass


@dataclass
class Chart:
    """The mapping in force, answering which account an amount goes to. What it cannot answer is collected in
    `missing` (and UNMAPPED answered meanwhile): a month's journals are refused when any account is missing
    (MissingAccounts), naming them all."""

    by_role: dict[tuple[str, str], Booked]
    types: dict[tuple[str, str], str]
    missing: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, rows: list[MappedRow]) -> Chart:
        booked = {(row.kind, row.key): Booked(row.account.code, row.account.name, row.account.tax_code or "")
                  for row in rows}  # fmt: skip
        return cls(booked, {(row.kind, row.key): row.account.type for row in rows})

    def role(self, kind: str) -> Booked:
        """The account of a role (payable, receivable, cash, tax, fx_gain, fx_loss, rounding)."""
        found = self.by_role.get((kind, ""))
        if found is None:
            self.missing.add(kind)
            return UNMAPPED
        return found

    def _typed(self, kind: str, key: str, account_type: str) -> Booked | None:
        return self.by_role.get((kind, key)) if self.types.get((kind, key)) == account_type else None

    def expense(self, category: str) -> Booked:
        """An expense's account: its category's, else category `*`."""
        key = normal_key("category", category)
        found = self._typed("category", key, "expense") or self._typed("category", ANY, "expense")
        if found is None:
            self.missing.add(f"expense category {key!r} (map it, or category {ANY!r})")
            return UNMAPPED
        return found

    def revenue(self, source: str | None, category: str) -> Booked:
        """A revenue's account: its source's, else its category's (a revenue account), else source `*`."""
        found = self._typed("source", normal_key("source", source), "revenue") if source else None
        found = found or self._typed("category", normal_key("category", category), "revenue")
        found = found or self._typed("source", ANY, "revenue")
        if found is None:
            self.missing.add(f"revenue source {source!r} in category {category!r} (map one, or source {ANY!r})")
            return UNMAPPED
        return found


class MissingAccounts(Conflict):
    """A journal needs an account the mapping does not give (409): what lacks one is named."""

    code = "missing_account"

    def __init__(self, missing: set[str]) -> None:
        listed = sorted(missing)
        super().__init__(f"no account mapped for: {'; '.join(listed)} (PUT /api/v1/accounts/mappings)", missing=listed)
