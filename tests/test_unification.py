"""experimental.unification (and its multipledispatch) against torch.fx's: the same
expressions and dispatch scripts run on both packages and must give the same results (reprs,
or the same exception type)."""

from __future__ import annotations

import importlib
import warnings

import pytest

CASES = r"""
unify(1, 1)
unify(1, 2)
unify(x, 1)
unify(1, x)
unify(x, x)
unify(x, y)
unify((1, x), (1, 2))
unify((1, x), (1, 2, 3))
unify([1, x], [1, 2])
unify((1, x), [1, 2])
unify({'a': x}, {'a': 1})
unify({'a': x}, {'b': 1})
unify({'a': x, 'b': 2}, {'a': 1})
unify((x, x), (1, 2))
unify((x, x), (1, 1))
unify((x, y), (y, 1))
unify(x, 1, {x: 2})
unify(x, 1, {x: 1})
unify((x, (y, 3)), (1, (2, 3)))
unify(iter([1, x]), iter([1, 2]))
unify('ab', 'ab')
unify('ab', 'ac')
unify(1.0, 1)
unify(x, (1, x))
reify(x, {x: 1})
reify(x, {})
reify((1, x, [y]), {x: 2, y: 3})
reify({'a': x}, {x: 1})
reify(x, {x: y, y: 3})
reify([x, (y,)], {x: [y], y: 5})
reify(5, {x: 1})
reify('abc', {x: 1})
reify(iter([x]), {x: 1}).__class__.__name__
list(reify(iter([x]), {x: 1}))
str(x)
repr(x)
str(var()('a'))
str(var()(1, 2))
var()(1, 2).token
var()('a') == var()('a')
var()('a') == 'a'
var()('a') != var()('b')
hash(var()('a')) == hash(var()('a'))
var()('a') is var()('a')
isvar(x)
isvar(1)
isvar([1])
isvar('x')
isinstance(var()(), Var)
len(vars()(3))
type(vars()(2)[0]).__name__
Var('t').token
utils.hashable(1)
utils.hashable([1])
utils.transitive_get(1, {1: 2, 2: 3})
utils.transitive_get(x, {x: y, y: 4})
utils.transitive_get(5, {})
utils.reverse_dict({1: 'a', 2: 'b'})
utils.freeze({1: [2, {3: 4}], 5: (6,)})
utils.freeze([1, 2])
utils.freeze(1)
utils.raises(ZeroDivisionError, lambda: 1 / 0)
utils.raises(ZeroDivisionError, lambda: 1)
tools.merge({1: 2}, {3: 4}, {1: 5})
tools.merge([{1: 2}, {3: 4}])
tools.merge_with(sum, {1: 1, 2: 2}, {1: 10})
tools.valmap(str, {1: 2})
tools.keymap(str, {1: 2})
tools.itemmap(lambda kv: (kv[1], kv[0]), {1: 2})
tools.valfilter(lambda v: v > 1, {1: 1, 2: 2})
tools.keyfilter(lambda k: k > 1, {1: 1, 2: 2})
tools.itemfilter(lambda kv: kv[0] + kv[1] > 2, {1: 1, 2: 2})
tools.assoc({1: 2}, 3, 4)
tools.dissoc({1: 2, 3: 4, 5: 6}, 1, 5, 7)
tools.assoc_in({'a': {'b': 1}}, ['a', 'c'], 2)
tools.update_in({'a': {'b': 1}}, ['a', 'b'], lambda v: v + 10)
tools.update_in({'a': {}}, ['a', 'b'], lambda v: v + 10, 0)
tools.get_in(['a', 'b'], {'a': {'b': 1}})
tools.get_in(['a', 'x'], {'a': {'b': 1}})
tools.get_in(['a', 'x'], {'a': {'b': 1}}, 7)
tools.get_in([0, 1], [[1, 2]])
tools.first([3, 4])
tools.first(iter('ab'))
tools.getter(1)([5, 6])
tools.getter([0, 1])([5, 6, 7])
tools.groupby(len, ['a', 'bb', 'c'])
tools.groupby(0, [(1, 'a'), (2, 'b'), (1, 'c')])
more.unify_object(Pt(1, x), Pt(1, 2), {})
more.unify_object(Pt(1, x), Pt(2, 2), {})
more.reify_object(Pt(x, 2), {x: 9})
unify(UPt(1, x), UPt(1, 2))
reify(UPt(x, 2), {x: 9})
unify(Pt(1, x), Pt(1, 2))
reify(Pt(x, 2), {x: 9})
mdu.expand_tuples([1, (2, 3), (4, 5)])
mdu.reverse_dict({'a': (1, 2), 'b': (2,)})
mdu.groupby(len, ['a', 'bb', 'c'])
mdu.typename(int)
mdu.typename((int, float))
mdu.raises(ValueError, lambda: int('x'))
conflict.supercedes((int,), (object,))
conflict.supercedes((object,), (int,))
conflict.supercedes((int, int), (int,))
conflict.supercedes((), (Variadic[int],))
conflict.supercedes((int, int), (Variadic[int],))
conflict.supercedes((int, Variadic[int]), (Variadic[object],))
conflict.supercedes((Variadic[int],), (int, Variadic[int]))
conflict.supercedes((bool, int), (int, Variadic[object]))
conflict.consistent((int,), (float,))
conflict.consistent((int, int), (object, float))
conflict.consistent((int,), (int, int))
conflict.consistent((Variadic[int],), (int, int))
conflict.consistent((int, Variadic[int]), (int,))
conflict.ambiguous((int, object), (object, int))
conflict.ambiguous((int, int), (object, int))
sorted(map(sorted, conflict.ambiguities([(int, object), (object, int), (int, int)])), key=str)
sorted(str(sorted(map(str, pair))) for pair in conflict.ambiguities([(int, object), (object, int)]))
conflict.super_signature([(int, object), (object, int)])
conflict.super_signature([(bool, int), (int, bool)])
conflict.edge((int,), (object,))
conflict.edge((object,), (int,))
conflict.edge((int,), (int,))
conflict.ordering([(object,), (int,), (bool,), (float,)])
conflict.ordering([(object, object), (int, object), (object, int), (int, int)])
conflict.ordering([(Variadic[object],), (int,), (int, Variadic[int]), ()])
isvariadic(Variadic[int])
isvariadic(int)
isvariadic(Variadic[(int, float)])
Variadic[int] == Variadic[int]
issubclass(Variadic[bool], Variadic[int])
issubclass(Variadic[int], Variadic[bool])
issubclass(bool, Variadic[int])
issubclass(int, Variadic[(int, str)])
isinstance(1, Variadic[int])
repr(Variadic[int])
dispatcher.str_signature((int, float))
dispatcher.variadic_signature_matches((int, int), (int, Variadic[int]))
dispatcher.variadic_signature_matches((int,), (int, Variadic[int]))
dispatcher.variadic_signature_matches((int, str), (int, Variadic[int]))
dispatcher.variadic_signature_matches((), (Variadic[int],))
list(dispatcher.variadic_signature_matches_iter((int, int), (int, Variadic[int])))
dispatcher.warning_text('f', {((int, object), (object, int))})
""".strip().splitlines()

DISPATCH_BLOCKS = r"""
d = Dispatcher('f')
@d.register(int)
def _(a): return 'int'
@d.register(object)
def _(a): return 'object'
@d.register(int, int)
def _(a, b): return 'int int'
@d.register((float, str), int)
def _(a, b): return 'float|str int'
@d.register(Variadic[str])
def _(*a): return 'strs'
@d.register(bool)
def _(a): raise MDNotImplementedError()
out.append([d(1), d(1.5), d(True), d(1, 2), d(1.5, 2), d('a', 2), d('a', 'b', 'c'), str(d), repr(d), d.__name__, d.name])
----
out.append(d())
----
d(1.5, 1.5)
----
out.append(sorted(str(sig).replace(PKG, '') for sig in d.funcs))
out.append([str(s) for s in d.ordering])
out.append(d.dispatch(int) is d.funcs[(int,)])
out.append(d.dispatch(bool) is d.funcs[(bool,)])
out.append(d.dispatch(complex) is d.funcs[(object,)])
out.append(d.dispatch(int, float))
out.append(len(list(d.dispatch_iter(bool))))
----
e = Dispatcher('g')
@e.register(bool)
def _(a): raise MDNotImplementedError()
e(True)
----
import warnings
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    h = Dispatcher('h')
    h.add((int, object), lambda a, b: 1)
    h.add((object, int), lambda a, b: 2)
    h.ordering
    out.append([(x.category.__name__, str(x.message)) for x in w])
out.append(h(1, 'a'))
----
ns = {}
@md.dispatch(int, namespace=ns)
def k(a): return a + 1
@md.dispatch(str, namespace=ns)
def k(a): return a + '!'
out.append((k(1), k('a'), type(k).__name__, sorted(ns)))
----
ns = {}
@md.dispatch(int, namespace=ns)
def annotated(a: int, b: str): return 'x'
out.append(sorted(map(str, annotated.funcs)))
----
class C:
    @md.dispatch(int)
    def m(self, a): return 'int'
    @md.dispatch(str)
    def m(self, a): return 'str'
out.append((C().m(1), C().m('s'), type(C.__dict__['m']).__name__))
----
out.append(mdcore.ismethod(lambda self, a: 1))
out.append(mdcore.ismethod(lambda a: 1))
----
import warnings
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    md.halt_ordering(); h2 = Dispatcher('h2'); h2.add((int,), lambda a: 'i'); h2.add((object,), lambda a: 'o'); md.restart_ordering()
out.append(h2(1))
----
out.append(match.supercedes((1, x), (x, x)))
out.append(match.supercedes((x, x), (1, x)))
out.append(match.supercedes((1, 2), (x, y)))
out.append(match.edge((1, x), (x, x)))
out.append(str(match.ordering([(x, y), (1, x), (1, 2)])[0]))  # the rest is unordered (set order in torch.fx)
----
vd = match.VarDispatcher('vd')
vd.add((x, 1), lambda x: ('got', x))
vd.add((x, y), lambda x, y: ('xy', x, y))
out.append(vd(5, 1))
out.append(vd(5, 2))
----
dd = match.Dispatcher('dd')
dd.add((1, x), lambda *a: ('one', a))
dd.add((x, x), lambda *a: ('same', a))
out.append(sorted(str(s) for s in dd.ordering))
----
dd(2, 3)
----
ns2 = {}
@match.match(1, x, namespace=ns2)
def mm(a, b): return ('first', a, b)
@match.match(x, x, namespace=ns2)
def mm(a, b): return ('second', a, b)
out.append((type(mm).__name__, sorted(ns2)))
----
with variables(1, 'q'):
    out.append((isvar(1), isvar('q')))
    out.append(unify((1, 2), (3, 2)))
----
with variables(1, 'q'):
    out.append(unify('q', 5))
----
out.append((isvar(1), unify((1, 2), (3, 2))))
----
out.append(sorted(dispatch_mod.namespace)[:3])
""".split("----")


def run(prefix):
    U = importlib.import_module(prefix)
    mods = {}
    for sub in [
        "utils",
        "unification_tools",
        "more",
        "match",
        "core",
        "variable",
        "dispatch",
        "multipledispatch",
        "multipledispatch.utils",
        "multipledispatch.conflict",
        "multipledispatch.variadic",
        "multipledispatch.dispatcher",
        "multipledispatch.core",
    ]:
        mods[sub] = importlib.import_module(prefix + "." + sub)
    ns = dict(
        unify=U.unify,
        reify=U.reify,
        var=U.var,
        Var=U.Var,
        isvar=U.isvar,
        vars=U.vars,
        variables=U.variables,
        utils=mods["utils"],
        tools=mods["unification_tools"],
        more=mods["more"],
        match=mods["match"],
        mdu=mods["multipledispatch.utils"],
        conflict=mods["multipledispatch.conflict"],
        Variadic=mods["multipledispatch.variadic"].Variadic,
        isvariadic=mods["multipledispatch.variadic"].isvariadic,
        dispatcher=mods["multipledispatch.dispatcher"],
        md=mods["multipledispatch"],
        mdcore=mods["multipledispatch.core"],
        Dispatcher=mods["multipledispatch"].Dispatcher,
        MDNotImplementedError=mods["multipledispatch"].MDNotImplementedError,
        dispatch_mod=mods["dispatch"],
    )
    ns["x"], ns["y"] = U.Var("x"), U.Var("y")
    ns["PKG"] = prefix

    class Pt:
        def __init__(self, a, b):
            self.a, self.b = a, b

        def __eq__(self, o):
            return type(o) is type(self) and self.__dict__ == o.__dict__

        def __repr__(self):
            return f"Pt({self.a!r}, {self.b!r})"

        __hash__ = None

    ns["Pt"] = Pt

    @U.unifiable
    class UPt(Pt):
        def __repr__(self):
            return f"UPt({self.a!r}, {self.b!r})"

    ns["UPt"] = UPt
    results = []
    for case in CASES:
        try:
            results.append((case, repr(eval(case, ns))))
        except Exception as e:
            results.append((case, "EXC " + type(e).__name__))
    for block in DISPATCH_BLOCKS:
        ns["out"] = []
        try:
            exec(block, ns)
            results.append((block.strip().splitlines()[0], repr(ns["out"])))
        except Exception as e:
            results.append(
                (
                    block.strip().splitlines()[0],
                    repr(ns["out"]) + " EXC " + type(e).__name__ + " " + str(e)[:150],
                )
            )
    return results


def _normalized(prefix):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [(case, result.replace(prefix, "PKG")) for case, result in run(prefix)]


@pytest.fixture(scope="module")
def results():
    return _normalized("fxkit.experimental.unification"), _normalized("torch.fx.experimental.unification")


def test_every_case_matches_torch_fx(results) -> None:
    ours, oracle = results
    assert len(ours) == len(oracle) > 150
    mismatches = [(case, mine, theirs) for (case, mine), (_, theirs) in zip(ours, oracle) if mine != theirs]
    assert mismatches == []


def test_cases_exercise_results_and_errors(results) -> None:
    ours, _ = results
    outcomes = [result for _, result in ours]
    assert any(result.startswith("EXC NotImplementedError") for result in outcomes)
    assert "{~x: 2}" in outcomes and "False" in outcomes


def test_public_names_match_torch_fx() -> None:
    import importlib

    for sub in ("", ".core", ".more", ".match", ".utils", ".unification_tools", ".variable",
                ".multipledispatch", ".multipledispatch.conflict", ".multipledispatch.dispatcher",
                ".multipledispatch.utils", ".multipledispatch.variadic", ".multipledispatch.core"):  # fmt: skip
        ours = importlib.import_module("fxkit.experimental.unification" + sub)
        oracle = importlib.import_module("torch.fx.experimental.unification" + sub)
        assert getattr(ours, "__all__", None) == getattr(oracle, "__all__", None), sub
        wanted = {
            name
            for name in vars(oracle)
            if not name.startswith("_")
            and getattr(getattr(oracle, name), "__module__", "").startswith(
                "torch.fx.experimental.unification"
            )
        }
        assert wanted <= set(vars(ours)), (sub, wanted - set(vars(ours)))
