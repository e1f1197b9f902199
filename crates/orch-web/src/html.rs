//! HTML by hand: escaping (every piece of task or run text goes through [`esc`]), the
//! page frame, and the embedded stylesheet and script. No template engine and no
//! build step: the assets are constants compiled into the binary.

use std::fmt::Write as _;

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the navigation, an optional message (a refusal's reason), the body,
/// and the script that keeps it live from event `seq` on (the newest event when the
/// page was read, so nothing written meanwhile is missed); `None`: not live.
pub fn page(
    title: &str,
    active: &str,
    notice: Option<&str>,
    body: &str,
    seq: Option<i64>,
) -> String {
    let mut nav = String::new();
    for (href, name) in [
        ("/orch/", "Board"),
        ("/orch/runs", "Runs"),
        ("/orch/reviews", "Review"),
        ("/orch/events", "Events"),
        ("/orch/settings", "Settings"),
    ] {
        let class = if name == active { " class=\"on\"" } else { "" };
        let _ = write!(nav, "<a href=\"{href}\"{class}>{name}</a>");
    }
    let notice = notice_html(notice);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · orch</title><style>{STYLE}</style></head>\
         <body><header><strong>orch</strong><nav>{nav}</nav>\
         <span id=\"live\" title=\"live updates\">○</span></header>\
         <div id=\"flash\" role=\"status\"></div><main id=\"main\" data-seq=\"{seq}\">{notice}{body}</main><script>{SCRIPT}</script></body></html>\n",
        title = esc(title),
        seq = seq.map(|s| s.to_string()).unwrap_or_default(),
    )
}

/// A refusal's reason, or nothing.
pub fn notice_html(notice: Option<&str>) -> String {
    notice
        .map(|n| format!("<p class=\"notice\" role=\"alert\">{}</p>", esc(n)))
        .unwrap_or_default()
}

/// A state as a coloured chip: `done`, `failed`, `running`, ...
pub fn status_chip(state: &str) -> String {
    let class: String = state
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("<span class=\"chip s-{class}\">{}</span>", esc(state))
}

/// `42s`, `3m 5s`, `1h 2m`.
pub fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// A POST form with one button; `fields` are hidden inputs (name, value).
pub fn button(action: &str, label: &str, csrf: &str, fields: &[(&str, &str)]) -> String {
    let mut hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    );
    for (k, v) in fields {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        );
    }
    format!(
        "<form method=\"post\" action=\"{}\">{hidden}<button>{}</button></form>",
        esc(action),
        esc(label)
    )
}

const STYLE: &str = "
:root{color-scheme:light dark;--bg:#f6f6f4;--fg:#1f2328;--card:#fff;--col:#eceae4;--muted:#656d76;--line:#d8dee4;--head:#223;--link:#0b5fbd}
@media (prefers-color-scheme:dark){:root{--bg:#15171c;--fg:#e6e6e6;--card:#21242b;--col:#1b1e24;--muted:#9ba3ad;--line:#343a43;--head:#0d0f12;--link:#6cb6ff}}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:var(--fg);background:var(--bg)}
a{color:var(--link)}
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1em;background:var(--head);color:#eee}
header a{color:#ccd;margin-right:1em;text-decoration:none}header a.on{color:#fff;font-weight:600}
#live{margin-left:auto}#live.on{color:#7d7}
main{padding:1em 1.2em;max-width:110em}#flash{padding:0 1.2em}#flash .notice{margin:1em 0 0}
h1{font-size:20px;margin:.2em 0 .4em}h2{font-size:15px;margin:1.4em 0 .5em}
.meta{color:var(--muted);font-size:12px}
.notice{background:#fee;color:#611;border:1px solid #c66;border-radius:4px;padding:.5em}
.board{display:flex;gap:.8em;align-items:flex-start;overflow-x:auto}
.col{flex:1 1 0;min-width:13em;background:var(--col);border-radius:8px;padding:.5em}
.col h2{font-size:12px;letter-spacing:.04em;text-transform:uppercase;margin:.2em 0 .6em;color:var(--muted)}
.card{background:var(--card);border-radius:6px;padding:.5em .6em;margin-bottom:.5em;box-shadow:0 1px 2px #0002;overflow-wrap:anywhere;border-left:4px solid var(--line)}
.card a.open{color:inherit;text-decoration:none}.card a.open:hover .title{text-decoration:underline}
.card.s-done{border-left-color:#2da44e}.card.s-failed{border-left-color:#cf222e}.card.s-blocked{border-left-color:#bf8700}
.card.s-in_progress{border-left-color:#0969da}.card.s-canceled{border-left-color:#8c959f}
.label{background:#dde3f0;color:#223;border-radius:3px;padding:0 .35em;margin-right:.2em;font-size:12px}
.waiting{color:#9a6700}.ready{color:#1a7f37}.failure{color:#cf222e}
.chip{display:inline-block;border-radius:999px;padding:0 .6em;font-size:12px;font-weight:600;background:#d0d7de;color:#1f2328}
.chip.s-done,.chip.s-succeeded,.chip.s-completed{background:#2da44e;color:#fff}
.chip.s-failed,.chip.s-halted{background:#cf222e;color:#fff}
.chip.s-blocked{background:#bf8700;color:#fff}
.chip.s-in_progress,.chip.s-running,.chip.s-provisioning,.chip.s-validating,.chip.s-merging,.chip.s-integrating,.chip.s-draining{background:#0969da;color:#fff}
.chip.s-canceled,.chip.s-interrupted{background:#8c959f;color:#fff}
form{display:inline}
button{font:inherit;font-size:12px;margin:.2em .2em 0 0;padding:.15em .7em;border:1px solid var(--line);border-radius:5px;background:var(--card);color:var(--fg);cursor:pointer}
button:hover{border-color:var(--link)}
input,select,textarea{font:inherit;font-size:13px;background:var(--card);color:var(--fg);border:1px solid var(--line);border-radius:4px;padding:.15em .35em}
form.edit{display:block;max-width:50em}form.edit label{display:block;margin:.4em 0}form.edit input[name=title],form.edit textarea{display:block;width:100%;box-sizing:border-box}
article.body{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.2em 1em;max-width:60em}
table{border-collapse:collapse;width:100%;background:var(--card)}
td,th{border-bottom:1px solid var(--line);padding:.3em .5em;text-align:left;vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600}
p.state.failing{color:#cf222e;font-weight:600}p.state.failing .chip{background:#cf222e;color:#fff}
svg.timeline{display:block;max-width:100%;height:auto;background:var(--card);border:1px solid var(--line);border-radius:6px}
svg.timeline text{fill:var(--fg)}
tr.failing td:first-child{box-shadow:inset 4px 0 #cf222e}tr.failing a{color:#cf222e}
.pages a{margin-right:1em}form.set{display:block;margin:.5em 0 1em}form.set input[name=key]{width:16em}form.set input[name=value]{width:20em}
.filters{margin-bottom:.8em}#find{width:18em;margin:0 1em .8em 0}
form.new{display:block;margin-bottom:.8em}form.new input[name=title]{width:24em}
.card[draggable=true]{cursor:grab}.col.over{outline:2px dashed var(--link)}
pre.log{background:#111;color:#ddd;padding:.5em;max-height:30em;overflow:auto;white-space:pre-wrap;border-radius:4px}
pre.tail{background:var(--col);padding:.4em;margin:.3em 0;white-space:pre-wrap}
.diff details.file{border:1px solid var(--line);border-radius:6px;margin:.5em 0;overflow:hidden}
.diff summary{padding:.35em .6em;cursor:pointer;background:var(--col)}
.diff pre{margin:0;overflow:auto;font-size:12px;background:var(--card)}
.diff pre span{display:block;padding:0 .6em;white-space:pre}
.diff pre a.ln{display:inline-block;min-width:3em;margin-right:.6em;color:#888;text-align:right;text-decoration:none;user-select:none}
.review form.decide label{display:block;margin:.4em 0}.review form.decide textarea{display:block;width:100%;max-width:60em}
.rounds blockquote{margin:.2em 0 .2em 1em;font-style:italic}.rounds .comment{margin-left:1em}
.diff span.add{color:#1a7f37}.diff span.del{color:#cf222e}
.diff pre span.add{background:#e6ffec}.diff pre span.del{background:#ffebe9}.diff pre span.hunk{color:#8250df;background:var(--col)}
@media (prefers-color-scheme:dark){.diff pre span.add{background:#12261e;color:#7ee787}.diff pre span.del{background:#2d1619;color:#ff7b72}.notice{background:#3b1d1d;color:#fcc}}
";

/// Keeps the page live: the server pushes a message on every change (Server-Sent
/// Events, resumed from the last id by the browser), and the page fetches its own
/// main part again. Elapsed times tick locally.
const SCRIPT: &str = "
(function(){
  var live=document.getElementById('live');
  var pending=false;
  function refresh(){
    if(pending)return;pending=true;
    fetch(location.href,{headers:{'X-Orch-Partial':'1'},credentials:'same-origin'})
      .then(function(r){return r.text()})
      .then(function(t){var m=document.getElementById('main');if(!m)return;
        // What a person is typing survives the update.
        var kept={};m.querySelectorAll('[data-keep]').forEach(function(e){kept[e.id]=e.value});
        m.innerHTML=t;pending=false;
        Object.keys(kept).forEach(function(id){var e=document.getElementById(id);if(e)e.value=kept[id]});
        tick();attachLogs();applyFilter();})
      .catch(function(){pending=false});
  }
  function tick(){
    var now=Date.now();
    document.querySelectorAll('[data-since]').forEach(function(e){
      var s=Math.max(0,Math.round((now-Number(e.dataset.since))/1000));
      e.textContent=(s>=60?Math.floor(s/60)+'m ':'')+(s%60)+'s';
    });
  }
  var logs=[];
  function attachLogs(){
    logs.forEach(function(s){s.close()});logs=[];
    document.querySelectorAll('pre.log[data-log]').forEach(function(pre){
      var s=new EventSource(pre.dataset.log+'?from='+pre.dataset.bytes);
      s.onmessage=function(m){pre.textContent+=m.data+'\\n';pre.dataset.bytes=m.lastEventId;};
      s.addEventListener('end',function(){s.close();pre.dataset.ended='1';});
      logs.push(s);
    });
  }
  // The board: find as you type (or click a label), and drag a card to another
  // column to move it there; the transition table decides, and a refusal says why.
  var query='';
  function applyFilter(){
    var f=document.getElementById('find');if(!f)return;
    if(f.value!==query)f.value=query;
    var q=query.toLowerCase();
    document.querySelectorAll('.card').forEach(function(c){
      c.style.display=(q===''||c.textContent.toLowerCase().indexOf(q)>=0)?'':'none';
    });
  }
  // Outside the part a live update replaces: it stays until the next move.
  function showNotice(text){
    var f=document.getElementById('flash');f.textContent='';if(!text)return;
    var p=document.createElement('p');p.className='notice';p.setAttribute('role','alert');
    p.textContent=text;f.appendChild(p);
  }
  document.addEventListener('input',function(e){if(e.target.id==='find'){query=e.target.value;applyFilter();}});
  document.addEventListener('click',function(e){
    var l=e.target.closest&&e.target.closest('.card .label');if(l){query=l.textContent;applyFilter();}
    // A line number in a review's change: a comment on that line.
    var n=e.target.closest&&e.target.closest('a.ln[data-at]');var c=document.getElementById('review-comments');
    if(n&&c){e.preventDefault();c.value+=(c.value&&!/\\n$/.test(c.value)?'\\n':'')+n.dataset.at+' ';c.focus();c.setSelectionRange(c.value.length,c.value.length);}
  });
  document.addEventListener('dragstart',function(e){
    var c=e.target.closest&&e.target.closest('.card[data-task]');
    if(c){e.dataTransfer.setData('text/plain',c.dataset.task);e.dataTransfer.effectAllowed='move';}
  });
  document.addEventListener('dragover',function(e){
    if(e.target.closest&&e.target.closest('.col[data-status]'))e.preventDefault();
  });
  document.addEventListener('drop',function(e){
    var col=e.target.closest&&e.target.closest('.col[data-status]');if(!col)return;
    e.preventDefault();
    var id=e.dataTransfer.getData('text/plain');var csrf=document.querySelector('input[name=csrf]');
    if(!/^[0-9]+$/.test(id)||!csrf)return;
    var body=new URLSearchParams({action:'move',to:col.dataset.status,csrf:csrf.value});
    showNotice('');
    fetch('/orch/tasks/'+id,{method:'POST',body:body,credentials:'same-origin'}).then(function(r){
      if(r.ok){refresh();return;}
      return r.text().then(function(t){
        var n=new DOMParser().parseFromString(t,'text/html').querySelector('.notice');
        showNotice(n?n.textContent:'the move was refused');
      });
    });
  });
  setInterval(tick,1000);tick();attachLogs();applyFilter();
  var seq=document.getElementById('main').dataset.seq;
  if(seq===''||seq===undefined)return;
  var es=new EventSource('/orch/live?after='+seq);
  es.onopen=function(){live.className='on';live.textContent='●'};
  es.onerror=function(){live.className='';live.textContent='○'};
  // How many events arrived and the newest, for whoever checks the stream missed none.
  es.onmessage=function(m){
    live.dataset.last=m.lastEventId;live.dataset.count=(Number(live.dataset.count)||0)+1;
    live.title='live: up to event '+m.lastEventId;refresh();
  };
  // A browser holds six connections per server over HTTP/1.1: a page left (or kept in
  // the back-forward cache) gives its streams back.
  window.addEventListener('pagehide',function(){es.close();logs.forEach(function(s){s.close()});});
})();
";
