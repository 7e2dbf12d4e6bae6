"""An interactive HTML page of a graph: one self-contained file, no network, no Graphviz.

:func:`to_html` returns the page for a GraphModule (or two, side by side, with :func:`diff_html`);
:func:`write_html` writes it. Nodes are grouped by the module that produced them
(``nn_module_stack``, else the ``call_module`` target), groups fold to any depth and are only
drawn when opened, so a graph of tens of thousands of nodes opens at once. Search finds nodes by
name, op or target; clicking a node shows its op, target, arguments, users, its line of the
generated code and the user's source line. Guards of a captured graph and leaves (``call_module``
nodes, whose inside is not in the graph) are highlighted. With example inputs, shape propagation
(meta tensors welcome) adds each value's shape and dtype.

In a notebook, ``View(gm)`` displays itself (``_repr_html_``).
"""

from __future__ import annotations

import html
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from .graph_module import GraphModule
from .node import Node, _format_target

__all__ = ["View", "diff_html", "graph_data", "to_html", "write_html"]


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _target_text(node: Node) -> str:
    return _format_target(node.op, node.target)  # as str(node) and print_tabular spell it


def _shape_text(node: Node) -> str:
    meta = node.meta.get("tensor_meta")
    value = node.meta.get("val")
    if meta is not None and hasattr(meta, "shape") and hasattr(meta, "dtype"):
        return f"{str(meta.dtype).replace('torch.', '')}[{', '.join(map(str, meta.shape))}]"
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')}[{', '.join(map(str, value.shape))}]"
    return ""


def _group_path(node: Node) -> List[str]:
    """The module path the node came from, outermost first (``["layer1", "layer1.0"]``)."""
    stack = node.meta.get("nn_module_stack")
    if isinstance(stack, dict) and stack:
        paths = []
        for key, entry in stack.items():
            path = entry[0] if isinstance(entry, tuple) and entry and isinstance(entry[0], str) else str(key)
            if path:
                paths.append(path)
        return paths
    if node.op == "call_module" and isinstance(node.target, str) and "." in node.target:
        parts = node.target.split(".")[:-1]
        return [".".join(parts[: i + 1]) for i in range(len(parts))]
    return []


def _code_lines(gm: GraphModule) -> Dict[str, str]:
    """Each node's line in the generated code (the line that assigns its name)."""
    lines: Dict[str, str] = {}
    for line in gm.code.splitlines():
        stripped = line.strip()
        name, sep, _ = stripped.partition(" = ")
        if sep and name.isidentifier() and name not in lines:
            lines[name] = stripped
        elif stripped.startswith("return "):
            lines.setdefault("output", stripped)
    return lines


def _source_line(node: Node) -> str:
    trace = node.meta.get("stack_trace")
    if isinstance(trace, str) and trace.strip():
        frames = [line.strip() for line in trace.strip().splitlines() if line.strip().startswith("File ")]
        return frames[-1] if frames else trace.strip().splitlines()[-1]
    location = node.meta.get("source_location") or node.meta.get("location")
    return str(location) if location else ""


def graph_data(gm: GraphModule) -> Dict[str, Any]:
    """What the page shows, as plain data: nodes with their fields and module groups."""
    code = _code_lines(gm)
    nodes = []
    for node in gm.graph.nodes:
        nodes.append(
            {
                "name": node.name,
                "op": node.op,
                "target": _target_text(node),
                "args": _short(node.args, 400),
                "kwargs": _short(dict(node.kwargs), 400) if node.kwargs else "",
                "users": [user.name for user in node.users],
                "inputs": [used.name for used in node.all_input_nodes],
                "code": code.get(node.name, ""),
                "source": _source_line(node),
                "shape": _shape_text(node),
                "group": _group_path(node),
                "guard": "guard" in node.meta or _target_text(node).startswith("fxkit.guards."),
                "leaf": node.op == "call_module",
            }
        )
    return {"title": type(gm).__name__, "nodes": nodes}


def _propagate_shapes(gm: GraphModule, example_inputs: Sequence[Any]) -> None:
    from .passes.shape_prop import ShapeProp

    ShapeProp(gm).propagate(*example_inputs)


_CSS = """
body{font:13px system-ui,sans-serif;margin:0;display:flex;height:100vh;color:#222}
#main{flex:1;overflow:auto;padding:8px;display:flex;gap:12px}
.pane{flex:1;min-width:0}
#side{width:36%;border-left:1px solid #ccc;padding:8px;overflow:auto;background:#fafafa}
#bar{position:sticky;top:0;background:#fff;padding:4px 0 8px}
input{width:60%;padding:4px}
.group>.head{cursor:pointer;font-weight:600;padding:2px 4px;background:#eef3fb;border-radius:3px;margin:2px 0}
.group>.body{margin-left:14px;border-left:1px dotted #aac}
.node{padding:1px 6px;cursor:pointer;white-space:nowrap;font-family:monospace;border-radius:3px}
.node:hover{background:#f0f0f0}.node.sel{background:#ffe9a8}
.op{color:#777;margin-right:6px}.shape{color:#2a7;margin-left:8px}
.guard{background:#fde2e2}.leaf{background:#e3f6e3}.only{outline:2px solid #d66}
.more{color:#36c;cursor:pointer;padding:2px 6px}
pre{white-space:pre-wrap;background:#fff;border:1px solid #ddd;padding:4px}
.legend span{padding:0 6px;margin-right:6px;border-radius:3px}
"""

_JS = r"""
const DATA = JSON.parse(document.getElementById('fxkit-data').textContent);
const CHUNK = 400;
function el(tag, cls, text){const e=document.createElement(tag);if(cls)e.className=cls;if(text!==undefined)e.textContent=text;return e;}
function build(graph){
  // entries of each group in program order: nodes and subgroups
  const root={name:'',entries:[],sub:new Map(),count:0};
  for(const n of graph.nodes){
    let g=root;g.count++;
    for(const p of n.group){
      let s=g.sub.get(p);
      if(!s){s={name:p,entries:[],sub:new Map(),count:0};g.sub.set(p,s);g.entries.push({group:s});}
      g=s;g.count++;
    }
    g.entries.push({node:n});
  }
  return root;
}
function nodeRow(n, pane){
  const row=el('div','node'+(n.guard?' guard':'')+(n.leaf?' leaf':'')+(pane.only.has(n.name)?' only':''));
  row.dataset.name=n.name;
  row.appendChild(el('span','op',n.op));
  row.appendChild(el('span','',n.name));
  if(n.op!=='placeholder'&&n.op!=='output')row.appendChild(el('span','op',' '+n.target));
  if(n.shape)row.appendChild(el('span','shape',n.shape));
  row.onclick=()=>select(pane,n.name);
  pane.rows.set(n.name,row);
  return row;
}
function fill(body, entries, pane, start){
  const end=Math.min(entries.length,start+CHUNK);
  for(let i=start;i<end;i++){
    const e=entries[i];
    if(e.node)body.appendChild(nodeRow(e.node,pane));
    else body.appendChild(groupBox(e.group,pane));
  }
  if(end<entries.length){
    const more=el('div','more','show '+Math.min(CHUNK,entries.length-end)+' more of '+(entries.length-end)+'...');
    more.onclick=()=>{more.remove();fill(body,entries,pane,end);};
    body.appendChild(more);
  }
}
function groupBox(g, pane){
  const box=el('div','group');box.dataset.group=g.name;
  const head=el('div','head','\u25b8 '+g.name+' ('+g.count+' nodes)');
  const body=el('div','body');body.style.display='none';
  let drawn=false;
  head.onclick=()=>{const open=body.style.display==='none';
    if(open&&!drawn){fill(body,g.entries,pane,0);drawn=true;}
    body.style.display=open?'':'none';head.textContent=(open?'\u25be ':'\u25b8 ')+g.name+' ('+g.count+' nodes)';};
  box.appendChild(head);box.appendChild(body);
  g.open=()=>{if(body.style.display==='none')head.onclick();};
  pane.groups.set(g.name,g);
  return box;
}
function reveal(pane,name){
  const n=pane.byName.get(name);if(!n)return null;
  for(const p of n.group){const g=pane.groups.get(p);if(g)g.open();}
  let row=pane.rows.get(name);
  while(!row){const more=pane.el.querySelector('.more');if(!more)break;more.onclick();row=pane.rows.get(name);}
  return row;
}
function select(pane,name){
  const row=reveal(pane,name);
  document.querySelectorAll('.node.sel').forEach(r=>r.classList.remove('sel'));
  if(row){row.classList.add('sel');row.scrollIntoView({block:'nearest'});}
  const n=pane.byName.get(name);const side=document.getElementById('side');side.innerHTML='';
  side.appendChild(el('h3','',n.name));
  const rows=[['op',n.op],['target',n.target],['args',n.args],['kwargs',n.kwargs],['shape',n.shape],['module',n.group.join(' > ')],['code',n.code],['source',n.source]];
  for(const [k,v] of rows){if(!v)continue;side.appendChild(el('b','',k));side.appendChild(el('pre','',v));}
  for(const [k,list] of [['inputs',n.inputs],['users',n.users]]){
    side.appendChild(el('b','',k+' ('+list.length+')'));const box=el('div');
    for(const u of list){const a=el('div','node',u);a.onclick=()=>select(pane,u);box.appendChild(a);} side.appendChild(box);}
  if(n.guard)side.appendChild(el('div','guard','capture guard: checked each time the graph runs'));
  if(n.leaf)side.appendChild(el('div','leaf','leaf: a module called as one step, not traced through'));
}
function search(q){
  const out=document.getElementById('results');out.innerHTML='';if(!q)return;
  q=q.toLowerCase();let shown=0,total=0;
  for(const pane of PANES)for(const n of pane.graph.nodes){
    if((n.name+' '+n.op+' '+n.target).toLowerCase().includes(q)){total++;
      if(shown<200){const r=el('div','node',(PANES.length>1?pane.graph.title+': ':'')+n.name+'  '+n.op+' '+n.target);r.onclick=()=>select(pane,n.name);out.appendChild(r);shown++;}}}
  out.insertBefore(el('div','',total+' match'+(total===1?'':'es')+(total>shown?' (first '+shown+' shown)':'')),out.firstChild);
}
const PANES=[];
function mount(graph, container, only){
  const pane={graph,el:container,rows:new Map(),groups:new Map(),byName:new Map(),only:new Set(only||[])};
  for(const n of graph.nodes)pane.byName.set(n.name,n);
  container.appendChild(el('h2','',graph.title+' ('+graph.nodes.length+' nodes)'));
  const body=el('div','tree');container.appendChild(body);
  fill(body,build(graph).entries,pane,0);
  PANES.push(pane);
}
const main=document.getElementById('panes');
const graphs=DATA.graphs;
function key(n){return n.op+' '+n.target+' '+n.name;}
const keys=graphs.map(g=>new Set(g.nodes.map(key)));
graphs.forEach((g,i)=>{const pane=el('div','pane');main.appendChild(pane);
  const only=graphs.length>1?g.nodes.filter(n=>!keys[1-i].has(key(n))).map(n=>n.name):[];mount(g,pane,only);});
document.getElementById('q').oninput=e=>search(e.target.value);
// #q=text searches and #node=name selects on load, so a link can point at a node.
const hash=new URLSearchParams(location.hash.slice(1));
if(hash.get('q')){document.getElementById('q').value=hash.get('q');search(hash.get('q'));}
if(hash.get('node')&&PANES[0].byName.has(hash.get('node')))select(PANES[0],hash.get('node'));
document.body.dataset.ready='yes';
"""


def _page(graphs: List[Dict[str, Any]], title: str) -> str:
    payload = json.dumps({"graphs": graphs}, separators=(",", ":")).replace("</", "<\\/")
    legend = '<span class="guard">guard</span><span class="leaf">leaf</span>'
    if len(graphs) > 1:
        legend += '<span class="only">only on this side</span>'
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        "<div id='main' style='flex-direction:column'><div id='bar'>"
        "<input id='q' placeholder='search by name, op or target' autocomplete='off'>"
        f" <span class='legend'>{legend}</span><div id='results'></div></div>"
        "<div id='panes' style='display:flex;gap:12px'></div></div>"
        "<div id='side'>click a node</div>"
        f"<script type='application/json' id='fxkit-data'>{payload}</script>"
        f"<script>{_JS}</script>"
        "</body></html>\n"
    )


def to_html(
    gm: GraphModule, example_inputs: Optional[Sequence[Any]] = None, title: Optional[str] = None
) -> str:
    """The page for ``gm``; with ``example_inputs`` each value's shape and dtype are shown too."""
    if example_inputs is not None:
        _propagate_shapes(gm, example_inputs)
    data = graph_data(gm)
    return _page([data], title or data["title"])


def diff_html(before: GraphModule, after: GraphModule, title: Optional[str] = None) -> str:
    """Two graphs side by side (e.g. before and after a pass); nodes only on one side are outlined."""
    left, right = graph_data(before), graph_data(after)
    if left["title"] == right["title"]:
        left["title"], right["title"] = f"{left['title']} (before)", f"{right['title']} (after)"
    return _page([left, right], title or f"{left['title']} vs {right['title']}")


def write_html(page: str, path: Union[str, os.PathLike]) -> None:
    """Write a page from :func:`to_html` or :func:`diff_html` to ``path``."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)


class View:
    """A graph page that notebooks display inline: ``View(gm)`` as the last expression of a cell."""

    def __init__(self, gm: GraphModule, example_inputs: Optional[Sequence[Any]] = None) -> None:
        self.html = to_html(gm, example_inputs)

    def _repr_html_(self) -> str:
        # Notebooks sanitise scripts in plain HTML output; an iframe keeps the page whole.
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            "style='width:100%;height:600px;border:1px solid #ccc'></iframe>"
        )
