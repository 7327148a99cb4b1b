// fhirledger portal: small enhancements; every page works without them.
// - Times: the server writes instants in UTC (<time datetime="…Z">); here
//   they are shown in the person's own time zone, the UTC value kept as the
//   element's title.
// - Uploads (form[data-upload]): the file is sent by XMLHttpRequest so the
//   person sees a progress bar, a file over the limit is refused before
//   anything is sent, and the page the server answers with (the dashboard,
//   or a message) replaces this one.
// - Live parts ([data-live]): the server's events (EventSource) say the part
//   changed; the page is fetched again, as a reload would, and the part is
//   replaced, the rows that arrived since it was loaded pointed out, and new
//   ones announced to screen readers. An
//   "ended" event (the session ended) stops listening.
(function () {
  'use strict';
  function human(bytes) {
    if (bytes < 1024) return bytes + ' bytes';
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' KiB';
    return (bytes / (1024 * 1024)).toFixed(1) + ' MiB';
  }
  function enhance(form) {
    var file = form.querySelector('input[type=file]');
    var bar = form.querySelector('progress');
    var status = form.querySelector('.upload-status');
    var button = form.querySelector('button[type=submit]');
    form.addEventListener('submit', function (event) {
      var chosen = file && file.files && file.files[0];
      var max = Number(file && file.getAttribute('data-max-bytes'));
      if (chosen && max && chosen.size > max) {
        event.preventDefault();
        status.textContent = 'This file is ' + human(chosen.size) + ': files of at most ' + human(max) + ' can be uploaded.';
        return;
      }
      if (!window.XMLHttpRequest || !window.FormData) return;
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open('POST', form.action);
      xhr.upload.addEventListener('progress', function (e) {
        if (!e.lengthComputable) return;
        var percent = Math.round((e.loaded / e.total) * 100);
        bar.hidden = false;
        bar.value = percent;
        status.textContent = 'Uploading: ' + percent + ' %';
      });
      xhr.addEventListener('load', function () {
        if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL && xhr.responseURL !== form.action) {
          window.location.assign(xhr.responseURL);
        } else {
          document.open();
          document.write(xhr.responseText);
          document.close();
        }
      });
      xhr.addEventListener('error', function () {
        status.textContent = 'The upload failed: the connection was lost. Please try again.';
        button.disabled = false;
      });
      button.disabled = true;
      status.textContent = 'Uploading…';
      xhr.send(new FormData(form));
    });
  }
  function pad(n) {
    return (n < 10 ? '0' : '') + n;
  }
  function localTimes(root) {
    var zone;
    try {
      zone = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' })
        .formatToParts(new Date())
        .filter(function (p) { return p.type === 'timeZoneName'; })
        .map(function (p) { return p.value; })[0];
    } catch (e) {
      zone = null;
    }
    var times = root.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var value = times[i].getAttribute('datetime');
      if (!/T\d\d:\d\d/.test(value)) continue;
      var t = new Date(value);
      if (isNaN(t.getTime())) continue;
      var shown = t.getFullYear() + '-' + pad(t.getMonth() + 1) + '-' + pad(t.getDate()) + ' ' + pad(t.getHours()) + ':' + pad(t.getMinutes());
      times[i].title = times[i].textContent;
      times[i].textContent = zone ? shown + ' ' + zone : shown;
    }
  }
  function keys(root) {
    var seen = {};
    var rows = root.querySelectorAll('[data-key]');
    for (var i = 0; i < rows.length; i++) seen[rows[i].getAttribute('data-key')] = true;
    return seen;
  }
  function live(region) {
    if (!window.EventSource || !window.fetch || !window.DOMParser) return;
    var announcer = document.createElement('p');
    announcer.className = 'sr-only';
    announcer.setAttribute('role', 'status');
    region.parentNode.insertBefore(announcer, region.nextSibling);
    var source = new EventSource(region.getAttribute('data-live'));
    var busy = false;
    var again = false;
    // Rows that arrived since the page was loaded: they stay pointed out.
    var arrived = {};
    function stop(words) {
      source.close();
      announcer.className = 'muted';
      announcer.textContent = words;
    }
    function refresh() {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      fetch(window.location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
        .then(function (response) {
          if (!response.ok || response.redirected) throw new Error('session');
          return response.text();
        })
        .then(function (text) {
          var fresh = new DOMParser().parseFromString(text, 'text/html').getElementById(region.id);
          if (!fresh) return;
          var before = keys(region);
          var nodes = [];
          for (var i = 0; i < fresh.childNodes.length; i++) nodes.push(document.importNode(fresh.childNodes[i], true));
          region.replaceChildren.apply(region, nodes);
          localTimes(region);
          var added = 0;
          var rows = region.querySelectorAll('[data-key]');
          for (var j = 0; j < rows.length; j++) {
            var key = rows[j].getAttribute('data-key');
            if (!before[key]) {
              arrived[key] = true;
              added++;
            }
            if (arrived[key]) rows[j].classList.add('fresh');
          }
          if (added) announcer.textContent = added === 1 ? '1 new entry' : added + ' new entries';
        })
        .catch(function () {
          stop('Live updates stopped. Reload the page to see new entries.');
        })
        .then(function () {
          busy = false;
          if (again) {
            again = false;
            refresh();
          }
        });
    }
    source.addEventListener('changed', refresh);
    source.addEventListener('ended', function () {
      stop('Your session has ended: this page no longer updates. Sign in again to see new entries.');
    });
  }
  document.addEventListener('DOMContentLoaded', function () {
    localTimes(document);
    var forms = document.querySelectorAll('form[data-upload]');
    for (var i = 0; i < forms.length; i++) enhance(forms[i]);
    var regions = document.querySelectorAll('[data-live]');
    for (var k = 0; k < regions.length; k++) live(regions[k]);
  });
})();
