/*! seaport.js: a small, dependency-free page tracker for the seaport collector.
 *
 * Embed (the collector serves this file; events go back to the origin it came from):
 *   <script>window.seaport=window.seaport||function(){(seaport.q=seaport.q||[]).push(arguments)}</script>
 *   <script async src="https://collector.example.cn/seaport.js"></script>
 * Optional: data-endpoint="https://…" on the script tag sends events elsewhere.
 *
 * Commands: seaport('identify', {openid, unionid, nickname, avatar_url, gender, country, city, language})
 *           seaport('consent', {analytics: 'granted' | 'withdrawn', minor, guardian_consent})
 *           seaport('flush')
 * Privacy (docs/requirements.md): no `user` field at all is sent while analytics consent is not
 * granted (R2), nor ever under Global Privacy Control or Do Not Track; withdrawal stops it at
 * once and is not retroactive (R3); the anonymous id is a first-party cookie (R13).
 */
(function (w, d) {
  'use strict';
  if (w.seaport && w.seaport.loaded) return;

  var BATCH = 20;           // events per request (the collector's limit is larger)
  var FLUSH_MS = 1000;      // batching window
  var MAX_QUEUE = 500;      // oldest events are dropped beyond this (offline for long)
  var MAX_BACKOFF = 60000;
  var SESSION_MS = 30 * 60 * 1000;
  var USER_FIELDS = ['openid', 'unionid', 'nickname', 'avatar_url', 'gender', 'country', 'city', 'language'];

  var script = d.currentScript;
  var endpoint = (script && script.getAttribute('data-endpoint')) ||
    (script && script.src ? new URL(script.src, w.location.href).origin : w.location.origin);

  function load(key) {
    try { return JSON.parse(w.localStorage.getItem(key)); } catch (e) { return null; }
  }
  function save(key, value) {
    try { w.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* storage off: memory only */ }
  }
  function now() { return Date.now(); }
  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    var b = w.crypto.getRandomValues(new Uint8Array(16)), h = [];
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    for (var i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1));
    h = h.join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // The first-party anonymous id cookie (R13): random, no personal data, one year.
  function anonymousId() {
    var m = d.cookie.match(/(?:^|; )_sp_aid=([^;]+)/);
    var id = m ? m[1] : 'c-' + uuid().replace(/-/g, '').slice(0, 16);
    d.cookie = '_sp_aid=' + id + '; path=/; max-age=31536000; SameSite=Lax' +
      (w.location.protocol === 'https:' ? '; Secure' : '');
    return id;
  }

  // A session ends after 30 minutes without events.
  function sessionId() {
    var s = load('_sp_sid');
    if (!s || now() - s.at > SESSION_MS) s = { id: 's-' + uuid().slice(0, 8), at: now() };
    s.at = now();
    save('_sp_sid', s);
    return s.id;
  }

  var aid = anonymousId();
  var user = load('_sp_user');
  var consent = load('_sp_consent');
  var optOut = w.navigator.globalPrivacyControl === true || w.navigator.doNotTrack === '1';
  var queue = load('_sp_queue') || [];
  var timer = null, backoff = 0, sending = false;
  var current = null; // the page being visited: {page, start, left}

  function consentGranted() { return consent === 'granted' && !optOut; }

  function path() {
    var l = w.location, hash = l.hash.indexOf('#/') === 0 ? l.hash : '';
    return l.pathname + l.search + hash;
  }

  function beacon(event, fields) {
    var e = {
      schema: 'beacon/1', event_id: uuid(), event: event, ts: new Date().toISOString(),
      anonymous_id: aid, session_id: sessionId(), page: current ? current.page : path(),
      referrer: current ? current.referrer : null
    };
    for (var k in fields) e[k] = fields[k];
    if (optOut) e.opt_out = true; // as the Sec-GPC/DNT headers do; the collector never lets a client opt in
    // R2: profile fields only while analytics consent is granted; otherwise no `user` at all.
    if (consentGranted() && user) e.user = user;
    return e;
  }

  function track(event, fields) {
    queue.push(beacon(event, fields));
    if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
    if (queue.length >= BATCH) flush(); else schedule(FLUSH_MS);
  }

  function schedule(ms) {
    if (!timer) timer = setTimeout(function () { timer = null; flush(); }, ms);
  }

  function post(route, body) {
    // text/plain keeps the request "simple": no CORS preflight per batch.
    return w.fetch(endpoint + route, {
      method: 'POST', body: JSON.stringify(body), keepalive: true, credentials: 'omit',
      headers: { 'Content-Type': 'text/plain' }
    }).then(function (r) {
      // 4xx other than 408/429: the events can never be accepted, so they are dropped.
      if (r.ok || (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429)) return r;
      throw new Error('retry');
    });
  }

  function retryLater() {
    backoff = Math.min(MAX_BACKOFF, backoff ? backoff * 2 : 1000);
    save('_sp_queue', queue);
    schedule(backoff + Math.random() * backoff / 2);
  }

  function remove(sent) {
    var ids = {};
    sent.forEach(function (e) { ids[e.event_id] = 1; });
    queue = queue.filter(function (e) { return !ids[e.event_id]; });
  }

  function flush() {
    if (sending || !queue.length) return;
    var batch = queue.slice(0, BATCH);
    sending = true;
    post('/collect', batch).then(function () {
      sending = false; backoff = 0;
      remove(batch);
      save('_sp_queue', queue);
      if (queue.length) flush();
    }, function () {
      sending = false;
      retryLater();
    });
  }

  // Leaving: hand everything to sendBeacon, which survives the page's end.
  function flushOnLeave() {
    while (queue.length) {
      var batch = queue.slice(0, BATCH);
      if (!w.navigator.sendBeacon ||
          !w.navigator.sendBeacon(endpoint + '/collect', new Blob([JSON.stringify(batch)], { type: 'text/plain' }))) {
        break; // kept in storage, sent on the next page load
      }
      remove(batch);
    }
    save('_sp_queue', queue);
  }

  function pageLeave() {
    if (!current || current.left) return;
    current.left = true;
    track('page_leave', { duration_ms: Math.max(0, now() - current.start) });
  }

  function pageView() {
    var page = path();
    if (current && current.page === page && !current.left) return;
    var referrer = current ? current.page : (d.referrer || null);
    if (current) pageLeave();
    current = { page: page, referrer: referrer, start: now(), left: false };
    track('page_view', {});
  }

  function clickLabel(el) {
    var text = (el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 64);
    return el.getAttribute('data-track') || el.id || text || el.tagName.toLowerCase();
  }

  function onClick(ev) {
    var el = ev.target && ev.target.closest && ev.target.closest('a,button,[data-track]');
    if (el) track('click', { element: clickLabel(el) });
  }

  function sendConsent(change, delay) {
    post('/consent', change).then(null, function () {
      setTimeout(function () { sendConsent(change, Math.min(MAX_BACKOFF, delay * 2)); }, delay);
    });
  }

  var commands = {
    identify: function (profile) {
      user = {};
      USER_FIELDS.forEach(function (k) { if (profile && profile[k] != null) user[k] = String(profile[k]); });
      save('_sp_user', user);
    },
    consent: function (choice) {
      if (!choice || (choice.analytics !== 'granted' && choice.analytics !== 'withdrawn')) return;
      consent = choice.analytics;
      save('_sp_consent', consent);
      var subject = user && user.openid ? { openid: user.openid } : { anonymous_id: aid };
      var change = { schema: 'consent/1', ts: new Date().toISOString(), subject: subject, analytics: consent };
      if (choice.minor != null) change.minor = !!choice.minor;
      if (choice.guardian_consent != null) change.guardian_consent = !!choice.guardian_consent;
      sendConsent(change, 1000);
    },
    flush: flush
  };

  function seaport(name, arg) {
    if (commands[name]) commands[name](arg);
  }

  var pending = (w.seaport && w.seaport.q) || [];
  w.seaport = seaport;
  seaport.loaded = true;

  // Single-page route changes: pushState, back/forward, hash routes.
  var push = w.history.pushState;
  w.history.pushState = function () {
    var r = push.apply(this, arguments);
    pageView();
    return r;
  };
  w.addEventListener('popstate', pageView);
  w.addEventListener('hashchange', pageView);
  d.addEventListener('click', onClick, true);
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState === 'hidden') { pageLeave(); flushOnLeave(); }
  });
  w.addEventListener('pagehide', function () { pageLeave(); flushOnLeave(); });

  for (var i = 0; i < pending.length; i++) seaport.apply(null, pending[i]);
  pageView();
  if (queue.length) flush();
})(window, document);
