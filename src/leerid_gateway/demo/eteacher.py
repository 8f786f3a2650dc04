"""A sample eTeacher: the page a pupil starts from, and a backend that introspects tokens.

It uses the gateway exactly as the real eTeacher would: the browser goes to /login, the page calls
POST /token with the session cookie, and the backend asks POST /introspect with its own client
credentials. It is part of the demo only.
"""

from __future__ import annotations

import json

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

PAGE = """<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>eTeacher (demo)</title>
<style>
 body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f5f7fa;color:#1f2933}
 header{background:#0b5cad;color:#fff;padding:1rem 2rem;font-weight:600;font-size:1.1rem}
 main{max-width:56rem;margin:2rem auto;padding:0 1.5rem}
 .card{background:#fff;border-radius:12px;padding:1.5rem 1.75rem;margin-bottom:1.25rem;
       box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.05)}
 h1{font-size:1.4rem;margin:0 0 .5rem} h2{font-size:1.05rem;margin:0 0 .75rem}
 .muted{color:#52606d} .error{color:#b42318;font-weight:600}
 a.button,button{display:inline-block;background:#0b5cad;color:#fff;border:0;border-radius:8px;padding:.65rem 1.1rem;
       font-weight:600;font-size:1rem;text-decoration:none;cursor:pointer;margin-right:.5rem}
 button.secondary{background:#fff;color:#1f2933;border:1px solid #cbd2d9}
 pre{background:#0f172a;color:#e2e8f0;border-radius:8px;padding:1rem;overflow:auto;font-size:.85rem}
 .badge{display:inline-block;border-radius:999px;padding:.1rem .6rem;font-size:.8rem;font-weight:600}
 .ok{background:#dcfce7;color:#166534} .no{background:#fee2e2;color:#991b1b}
</style></head>
<body><header>eTeacher · informaticawetenschappen (demo)</header><main>
<div class="card" id="welcome"><h1>Welkom bij eTeacher</h1>
 <p class="muted" id="status">Even kijken of je aangemeld bent…</p>
 <p class="error" id="refused" hidden></p>
 <div id="actions"></div></div>
<div class="card" id="token-card" hidden><h2>Het token van de gateway</h2>
 <p class="muted">Dit kortlevende JWT draagt enkel een ondoorzichtige <code>sub</code>, geen LeerID-sleutels.</p>
 <pre id="token"></pre></div>
<div class="card" id="introspect-card" hidden><h2>Introspectie door de eTeacher-backend <span id="active"></span></h2>
 <pre id="introspection"></pre><button class="secondary" id="again">Opnieuw introspecteren</button></div>
</main>
<script>
const GATEWAY = __GATEWAY__, SELF = __SELF__;
const $ = (id) => document.getElementById(id);
let lastToken = null;
function decode(part){const s=part.replace(/-/g,'+').replace(/_/g,'/');
  return JSON.parse(decodeURIComponent(escape(atob(s+'==='.slice((s.length+3)%4)))));}
async function introspect(){
  const r = await fetch('/api/introspect',{method:'POST',headers:{'Content-Type':'application/json'},
    body:JSON.stringify({token:lastToken})});
  const body = await r.json();
  $('introspection').textContent = JSON.stringify(body,null,2);
  $('active').className = 'badge ' + (body.active ? 'ok' : 'no');
  $('active').textContent = body.active ? 'actief' : 'niet actief';
  $('introspect-card').hidden = false;
}
function loginButton(){
  const a=document.createElement('a'); a.className='button'; a.id='login';
  a.href=GATEWAY+'/login?return_to='+encodeURIComponent(SELF+'/'); a.textContent='Aanmelden met LeerID';
  $('actions').replaceChildren(a);
}
async function main(){
  const params = new URLSearchParams(location.search);
  if (params.get('error') === 'access_denied') {
    $('refused').hidden = false;
    $('refused').textContent = 'LeerID gaf geen toegang: je school werkt (nog) niet samen met eTeacher.';
  }
  const r = await fetch(GATEWAY+'/token',{method:'POST',credentials:'include'});
  if (r.status !== 200) { $('status').textContent='Je bent niet aangemeld.'; loginButton(); return; }
  lastToken = (await r.json()).access_token;
  const me = await (await fetch(GATEWAY+'/me',{credentials:'include'})).json();
  $('status').textContent = 'Aangemeld als ' + me.given_name + ' ' + me.family_name + ' (' + (me.school_name||me.school_code)
    + ')' + (me.temporary ? ' — tijdelijk account' : '') + '.';
  const [h,p] = lastToken.split('.');
  $('token').textContent = 'header: ' + JSON.stringify(decode(h),null,2) + '\\nclaims: ' + JSON.stringify(decode(p),null,2);
  $('token-card').hidden = false;
  const out=document.createElement('button'); out.id='logout'; out.textContent='Afmelden';
  out.onclick = async () => { await fetch(GATEWAY+'/logout',{method:'POST',credentials:'include'});
    $('status').textContent='Je bent afgemeld. Het token hierboven is nu ingetrokken.'; loginButton(); await introspect(); };
  $('actions').replaceChildren(out);
  await introspect();
}
$('again').onclick = introspect;
main();
</script></body></html>
"""


def create_eteacher_app(*, gateway_url: str, self_url: str, client_id: str, client_secret: str) -> Starlette:
    page = PAGE.replace("__GATEWAY__", json.dumps(gateway_url)).replace("__SELF__", json.dumps(self_url))
    http = httpx.AsyncClient(timeout=5.0)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def api_introspect(request: Request) -> Response:
        body = await request.json()
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            return JSONResponse({"error": "token required"}, status_code=400)
        answer = await http.post(
            f"{gateway_url}/introspect", data={"token": token}, auth=(client_id, client_secret)
        )
        return JSONResponse(answer.json(), status_code=answer.status_code)

    return Starlette(routes=[Route("/", index), Route("/api/introspect", api_introspect, methods=["POST"])])
