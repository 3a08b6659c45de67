// The edition page's publish / unpublish job (issue 28): poll GET /api/v1/jobs/<id> and show its progress page by
// page; when it ends, reload the page so the server draws the result (status badges, versions, failures).

// A page takes seconds to build: a poll a second shows each page as it lands without loading the server.
const POLL_MS = 1000;
// After a failed poll (server restarting, network), wait longer before asking again.
const RETRY_MS = 5000;
const FINAL = new Set(['done', 'failed']);

const card = document.getElementById('job');
if (card && !FINAL.has(card.dataset.status)) {
  const text = document.getElementById('job-text');
  const bar = document.getElementById('job-progress');

  const show = (job) => {
    card.dataset.status = job.status;
    if (bar && job.pages_total > 0) {
      bar.max = job.pages_total;
      bar.value = job.pages_done;
      bar.textContent = `${job.pages_done} / ${job.pages_total}`;
    }
    if (job.status === 'queued') {
      text.textContent = card.dataset.textQueued;
    } else if (job.status === 'running') {
      text.textContent = job.kind === 'publish'
        ? card.dataset.textRunningPublish.replace('{done}', job.pages_done).replace('{total}', job.pages_total)
        : card.dataset.textRunningUnpublish;
    }
  };

  const poll = async () => {
    let job;
    try {
      const response = await fetch(card.dataset.jobUrl, {headers: {Accept: 'application/json'}, credentials: 'same-origin'});
      if (response.status === 404) {  // gone with its edition: the page shows what is left
        window.location.replace(card.dataset.reloadUrl);
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      job = await response.json();
    } catch (err) {
      setTimeout(poll, RETRY_MS);
      return;
    }
    show(job);
    if (FINAL.has(job.status)) {
      window.location.replace(card.dataset.reloadUrl);
    } else {
      setTimeout(poll, POLL_MS);
    }
  };
  setTimeout(poll, POLL_MS);
}
