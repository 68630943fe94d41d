// The question page: asks /api/ask, renders cited answers, keeps the conversation going.
//
// Safety rule for this file: text that came from a document or a model is only ever put into
// the page as text nodes (createTextNode / textContent). The Markdown renderer below builds
// DOM elements itself instead of producing an HTML string, so there is no point at which
// document text is parsed as HTML; raw HTML in an answer simply shows as characters.
"use strict";

(function () {
  const KEY_STORAGE = "rag-api-key";
  const AUDIENCE_STORAGE = "rag-audience";

  const state = {
    session: null, // conversation id from the server; follow-ups send it back
    lastQuestion: null,
    busy: false,
    turnCount: 0,
  };

  const elements = {};

  // ---------------------------------------------------------------------------------------
  // Access key: taken once from ?key=..., kept for this tab in sessionStorage, then removed
  // from the address bar so it does not linger in history or screenshots.

  function adoptKeyFromAddress() {
    const params = new URLSearchParams(window.location.search);
    if (!params.has("key")) return;
    const key = params.get("key");
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    params.delete("key");
    const query = params.toString();
    const clean = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
    window.history.replaceState(null, "", clean);
  }

  async function callApi(path, body) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.Authorization = "Bearer " + key;
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers: headers,
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch (networkError) {
      throw new Error("The server could not be reached. Is `rag serve` still running?");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (notJson) {
      data = null;
    }
    if (response.status === 401) {
      throw new Error("This server needs an access key: open the page as /?key=YOUR_KEY.");
    }
    if (!response.ok) {
      const message = data && typeof data.error === "string" ? data.error : "";
      const failure = new Error(message || "The server answered with status " + response.status + ".");
      failure.status = response.status;
      throw failure;
    }
    return data;
  }

  // ---------------------------------------------------------------------------------------
  // Small DOM helpers. `make` only ever sets text through textContent.

  function make(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined && text !== null) element.textContent = String(text);
    return element;
  }

  function safeHttpUrl(value) {
    if (typeof value !== "string") return null;
    const trimmed = value.trim();
    // Only web links: a source URL such as javascript:... must never become clickable.
    return /^https?:\/\/[^\s]+$/i.test(trimmed) ? trimmed : null;
  }

  function doiUrl(doi) {
    if (typeof doi !== "string" || !doi.trim()) return null;
    const bare = doi.trim().replace(/^https?:\/\/(dx\.)?doi\.org\//i, "").replace(/^doi:\s*/i, "");
    return "https://doi.org/" + encodeURI(bare).replace(/[?#]/g, encodeURIComponent);
  }

  function referenceLink(reference) {
    return doiUrl(reference.doi) || safeHttpUrl(reference.url);
  }

  // ---------------------------------------------------------------------------------------
  // Markdown: ### headings, paragraphs, - and 1. lists, **bold**, *emphasis*, [n] citations.

  const INLINE = /\*\*([^*]+?)\*\*|\*([^*\s][^*]*?)\*|\[(\d+(?:\s*(?:,|–|-)\s*\d+)*)\]/g;

  function citationNumbers(spec) {
    const numbers = [];
    for (const part of spec.split(",")) {
      const range = part.split(/[–-]/).map((piece) => parseInt(piece.trim(), 10));
      if (range.length === 2 && range[0] <= range[1] && range[1] - range[0] < 20) {
        for (let n = range[0]; n <= range[1]; n += 1) numbers.push(n);
      } else {
        numbers.push(range[0]);
      }
    }
    return numbers;
  }

  function appendInline(parent, text, makeCitation) {
    let last = 0;
    INLINE.lastIndex = 0;
    const matches = Array.from(text.matchAll(INLINE));
    for (const match of matches) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      if (match[1] !== undefined) {
        const strong = make("strong");
        appendInline(strong, match[1], makeCitation);
        parent.appendChild(strong);
      } else if (match[2] !== undefined) {
        const emphasis = make("em");
        appendInline(emphasis, match[2], makeCitation);
        parent.appendChild(emphasis);
      } else {
        const numbers = citationNumbers(match[3]);
        const links = numbers.map((n) => makeCitation(n));
        if (links.every((link) => link !== null)) {
          for (const link of links) parent.appendChild(link);
        } else {
          // A number with no reference behind it stays visible as plain text.
          parent.appendChild(document.createTextNode(match[0]));
        }
      }
      last = match.index + match[0].length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function withoutEmphasis(text) {
    return String(text).replace(/\*\*([^*]+?)\*\*/g, "$1").replace(/\*([^*\s][^*]*?)\*/g, "$1");
  }

  function renderMarkdown(markdown, makeCitation) {
    const fragment = document.createDocumentFragment();
    const lines = String(markdown || "").replace(/\r\n?/g, "\n").split("\n");
    let paragraph = [];
    let list = null;
    let lastItem = null;

    function flushParagraph() {
      if (paragraph.length) {
        const p = make("p");
        appendInline(p, paragraph.join(" "), makeCitation);
        fragment.appendChild(p);
        paragraph = [];
      }
    }
    function closeList() {
      list = null;
      lastItem = null;
    }

    for (const line of lines) {
      const heading = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
      const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
      const numbered = /^\s*(\d{1,3})[.)]\s+(.*)$/.exec(line);
      if (!line.trim()) {
        flushParagraph();
        closeList();
      } else if (heading) {
        flushParagraph();
        closeList();
        // The turn's question is an h2 and its sections h3, so answer headings start at h4.
        const level = Math.min(6, Math.max(4, heading[1].length + 1));
        const h = make("h" + level, "answer-heading");
        appendInline(h, heading[2], makeCitation);
        fragment.appendChild(h);
      } else if (bullet || numbered) {
        flushParagraph();
        const tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = make(tag);
          if (numbered) list.start = parseInt(numbered[1], 10);
          fragment.appendChild(list);
        }
        lastItem = make("li");
        appendInline(lastItem, (bullet || numbered)[bullet ? 1 : 2], makeCitation);
        list.appendChild(lastItem);
      } else if (lastItem && /^\s+/.test(line)) {
        // An indented line continues the list item above it.
        appendInline(lastItem, " " + line.trim(), makeCitation);
      } else {
        closeList();
        paragraph.push(line.trim());
      }
    }
    flushParagraph();
    return fragment;
  }

  // ---------------------------------------------------------------------------------------
  // One turn of the conversation.

  function referenceId(turnNumber, n) {
    return "ref-" + turnNumber + "-" + n;
  }

  function highlightReference(turnNumber, n) {
    const item = document.getElementById(referenceId(turnNumber, n));
    if (!item) return;
    document.querySelectorAll(".reference.highlight").forEach((other) => other.classList.remove("highlight"));
    item.classList.add("highlight");
    const details = item.querySelector("details");
    if (details) details.open = true;
    item.scrollIntoView({ behavior: "smooth", block: "center" });
    item.focus({ preventScroll: true });
  }

  function citationMaker(turnNumber, citationsByNumber) {
    return function (n) {
      const citation = citationsByNumber.get(n);
      if (!citation) return null;
      const sup = make("sup", "cite");
      const link = make("a", "cite-link", "[" + n + "]");
      link.href = "#" + referenceId(turnNumber, n);
      link.setAttribute("aria-label", "Reference " + n + ": " + (citation.title || citation.doc_id));
      // The quote as a hover preview; the title attribute is plain text, never markup.
      if (citation.quote) link.title = withoutEmphasis(citation.quote);
      link.addEventListener("click", (event) => {
        event.preventDefault();
        highlightReference(turnNumber, n);
      });
      sup.appendChild(link);
      return sup;
    };
  }

  function renderSourceDetails(container, reference) {
    const link = referenceLink(reference);
    const title = reference.title || reference.doc_id || "Untitled source";
    let titleElement;
    if (link) {
      titleElement = make("a", "reference-title", title);
      titleElement.href = link;
      titleElement.target = "_blank";
      titleElement.rel = "noopener noreferrer";
    } else {
      titleElement = make("span", "reference-title", title);
    }
    container.appendChild(titleElement);
    const facts = [reference.source, reference.year, reference.section].filter(
      (value) => value !== null && value !== undefined && String(value).trim() !== ""
    );
    if (facts.length) container.appendChild(make("span", "reference-meta", facts.join(" · ")));
    if (reference.doi) {
      const doi = make("span", "reference-doi", "doi: " + reference.doi);
      container.appendChild(doi);
    }
  }

  function renderReferences(turnNumber, citations) {
    const section = make("section", "references");
    const headingId = "references-" + turnNumber;
    const heading = make("h3", null, "References");
    heading.id = headingId;
    section.setAttribute("aria-labelledby", headingId);
    section.appendChild(heading);
    const list = make("ol", "reference-list");
    for (const citation of citations) {
      const item = make("li", "reference");
      item.id = referenceId(turnNumber, citation.n);
      item.value = citation.n;
      item.tabIndex = -1;
      renderSourceDetails(item, citation);
      if (citation.quote) {
        const details = make("details", "reference-quote");
        details.appendChild(make("summary", null, "Quoted passage"));
        // Passages keep the source's **bold** and *emphasis*; numbers in them are not links.
        const quote = make("blockquote");
        appendInline(quote, citation.quote, () => null);
        details.appendChild(quote);
        item.appendChild(details);
      }
      list.appendChild(item);
    }
    section.appendChild(list);
    return section;
  }

  function renderAbstention(data) {
    const notice = make("div", "notice abstained");
    notice.setAttribute("role", "note");
    notice.appendChild(make("h3", null, "The sources do not cover this"));
    // The answer says why it abstained (a term no source mentions, no dose given, ...); the
    // fixed sentence is only for a server that sends no reason.
    const reason = typeof data.answer === "string" && data.answer.trim() ? data.answer.trim() : "";
    notice.appendChild(
      make(
        "p",
        "abstention-reason",
        reason ||
          "None of the indexed passages answers this question well enough to cite, so no " +
            "answer is given. Rephrase the question, or check these nearest sources yourself:"
      )
    );
    const nearest = (data.nearest_sources && data.nearest_sources.length
      ? data.nearest_sources
      : data.citations) || [];
    if (nearest.length) {
      const list = make("ul", "nearest-sources");
      for (const source of nearest) {
        const item = make("li", "reference");
        renderSourceDetails(item, source);
        list.appendChild(item);
      }
      notice.appendChild(list);
    } else {
      notice.appendChild(make("p", "muted", "No passage came close."));
    }
    return notice;
  }

  function renderRelated(questions) {
    const section = make("section", "related");
    section.appendChild(make("h3", null, "Related questions"));
    const list = make("ul", "related-list");
    for (const question of questions) {
      const item = make("li");
      const button = make("button", "related-question", question);
      button.type = "button";
      button.addEventListener("click", () => ask(question, { replaceLast: false }));
      item.appendChild(button);
      list.appendChild(item);
    }
    section.appendChild(list);
    return section;
  }

  function renderTurn(data, turnNumber, elapsedMs) {
    const item = make("li", "turn");
    item.dataset.turn = String(turnNumber);
    const article = make("article", "turn-card");
    const question = make("h2", "turn-question", data.question);
    question.tabIndex = -1;
    article.appendChild(question);
    if (data.standalone_question && data.standalone_question !== data.question) {
      article.appendChild(make("p", "standalone", "Read as: " + data.standalone_question));
    }

    const citations = Array.isArray(data.citations) ? data.citations : [];
    const byNumber = new Map(citations.map((citation) => [citation.n, citation]));
    const makeCitation = citationMaker(turnNumber, byNumber);

    if (data.abstained) {
      article.appendChild(renderAbstention(data));
    } else {
      if (data.evidence && data.evidence.grade) {
        const grade = data.evidence.grade;
        const wording = grade === "partial" && data.evidence.statement
          ? data.evidence.statement
          : grade === "direct"
            ? "The cited passages state the answer to what was asked."
            : "";
        const evidence = make("p", "evidence evidence-" + grade);
        evidence.appendChild(make("strong", "evidence-grade", "Evidence: " + grade));
        if (wording) evidence.appendChild(document.createTextNode(" \u2014 " + wording));
        article.appendChild(evidence);
      }
      if (data.bottom_line) {
        const bottom = make("div", "bottom-line");
        bottom.appendChild(make("h3", "bottom-line-label", "Bottom line"));
        const text = make("p", "bottom-line-text");
        appendInline(text, data.bottom_line, makeCitation);
        bottom.appendChild(text);
        article.appendChild(bottom);
      }
      const body = make("div", "answer-body");
      // The answer text opens with a partial grade's statement; the evidence line said it.
      let answerText = data.answer || "";
      const statement = data.evidence && data.evidence.statement;
      if (statement && answerText.startsWith(statement)) {
        answerText = answerText.slice(statement.length).trimStart();
      }
      body.appendChild(renderMarkdown(answerText, makeCitation));
      article.appendChild(body);
      if (citations.length) article.appendChild(renderReferences(turnNumber, citations));
    }

    const related = Array.isArray(data.related_questions) ? data.related_questions : [];
    if (related.length) article.appendChild(renderRelated(related));

    const meta = [];
    meta.push(data.audience === "patient" ? "Written for patients" : "Written for clinicians");
    if (data.mode) meta.push(data.mode + " retrieval");
    if (elapsedMs !== undefined) meta.push("answered in " + (elapsedMs / 1000).toFixed(1) + " s");
    article.appendChild(make("p", "turn-meta", meta.join(" · ")));
    article.appendChild(make("p", "turn-disclaimer", data.disclaimer ||
      "Decision support only: not a substitute for clinical judgement."));
    item.appendChild(article);
    return item;
  }

  // ---------------------------------------------------------------------------------------
  // Asking.

  function currentAudience() {
    const checked = document.querySelector('input[name="audience"]:checked');
    return checked ? checked.value : "clinician";
  }

  function setBusy(busy, message) {
    state.busy = busy;
    elements.status.hidden = !busy;
    elements.statusText.textContent = message || "Searching the sources…";
    elements.askButton.disabled = busy;
    elements.form.setAttribute("aria-busy", busy ? "true" : "false");
    document.querySelectorAll(".related-question, input[name='audience']").forEach((control) => {
      control.disabled = busy;
    });
  }

  function showError(message) {
    elements.error.textContent = message;
    elements.error.hidden = !message;
  }

  function enterConversationMode() {
    elements.intro.hidden = true;
    elements.questionLabel.textContent = "Ask a follow-up question";
    elements.question.placeholder = "e.g. And in pregnancy?";
    elements.newConversation.hidden = false;
  }

  async function ask(question, options) {
    const text = String(question || "").trim();
    if (state.busy) return;
    if (!text) {
      showError("Type a question first.");
      elements.question.focus();
      return;
    }
    if (text.length > 2000) {
      showError("The question is too long (" + text.length + " characters; the limit is 2000).");
      return;
    }
    showError("");
    setBusy(true, options.replaceLast ? "Rewriting the answer…" : "Searching the sources…");
    const started = performance.now();
    const body = { question: text, audience: currentAudience() };
    if (state.session) body.session = state.session;
    // Rewriting the latest answer replaces its saved turn instead of asking it again.
    if (options.replaceLast && state.session) body.replace_last = true;
    try {
      const data = await callApi("/api/ask", body);
      state.session = data.session;
      state.lastQuestion = text;
      state.turnCount += 1;
      const turn = renderTurn(data, state.turnCount, performance.now() - started);
      const previous = elements.conversation.lastElementChild;
      if (options.replaceLast && previous) {
        elements.conversation.replaceChild(turn, previous);
      } else {
        elements.conversation.appendChild(turn);
      }
      elements.question.value = "";
      enterConversationMode();
      const heading = turn.querySelector(".turn-question");
      heading.scrollIntoView({ behavior: "smooth", block: "start" });
      heading.focus({ preventScroll: true });
    } catch (error) {
      if (error.status === 404 && state.session) {
        // The server no longer has this conversation (deleted, or another data folder).
        showError(error.message + " (select “New conversation” to start again)");
      } else {
        showError(error.message);
      }
    } finally {
      setBusy(false);
    }
  }

  function startNewConversation() {
    state.session = null;
    state.lastQuestion = null;
    elements.conversation.textContent = "";
    elements.intro.hidden = false;
    elements.questionLabel.textContent = "Your question";
    elements.newConversation.hidden = true;
    showError("");
    elements.question.focus();
  }

  function init() {
    adoptKeyFromAddress();
    for (const id of ["conversation", "status", "error", "intro", "question", "new-conversation"]) {
      elements[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = document.getElementById(id);
    }
    elements.form = document.getElementById("ask-form");
    elements.statusText = document.getElementById("status-text");
    elements.askButton = document.getElementById("ask-button");
    elements.questionLabel = document.getElementById("question-label");

    const savedAudience = sessionStorage.getItem(AUDIENCE_STORAGE);
    if (savedAudience) {
      const radio = document.querySelector('input[name="audience"][value="' +
        (savedAudience === "patient" ? "patient" : "clinician") + '"]');
      if (radio) radio.checked = true;
    }

    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      ask(elements.question.value, { replaceLast: false });
    });
    elements.question.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        ask(elements.question.value, { replaceLast: false });
      }
    });
    document.querySelectorAll('input[name="audience"]').forEach((radio) => {
      radio.addEventListener("change", () => {
        sessionStorage.setItem(AUDIENCE_STORAGE, currentAudience());
        // Switching audience rewrites the latest answer for the new reader.
        if (state.lastQuestion) ask(state.lastQuestion, { replaceLast: true });
      });
    });
    elements.newConversation.addEventListener("click", startNewConversation);
  }

  // Exposed for the browser tests of the renderer; nothing on the page depends on it.
  window.ragPage = { renderMarkdown: renderMarkdown, state: state };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
