// Agentic / tool-use families: choosing a tool, writing its call, pulling arguments out of a
// request, deciding to confirm, ordering steps, reacting to a tool's status.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth_internal.h"

#define W(name) char name[SYNTH_MAXW][SYNTH_WORD]

static const char *const no_details[] = {NULL};

// ---- requests shared by pick_tool and tool_call
SYNTH_LIST(langs, "french", "spanish", "german", "italian");
SYNTH_LIST(search_terms, "cats", "pizza", "jazz", "rockets", "tulips", "chess");
static void in_request(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    const char *city = synth_pick(r, synth_cities), *name = synth_pick(r, synth_names);
    int a = synth_range(r, 2, 30), c = synth_range(r, 2, 30);
    switch (synth_rng_below(r, 6)) {
    case 0: synth_buf_addf(b, synth_rng_below(r, 2) ? "weather in %s" : "is it raining in %s", city); break;
    case 1: synth_buf_addf(b, "%s %d %s %d", synth_rng_below(r, 2) ? "compute" : "what is", a, synth_rng_below(r, 2) ? "plus" : "times", c); break;
    case 2: synth_buf_addf(b, "translate %s to %s", synth_pick(r, synth_nouns), synth_pick(r, langs)); break;
    case 3: synth_buf_addf(b, synth_rng_below(r, 2) ? "email %s about the report" : "send a mail to %s", name); break;
    case 4: synth_buf_addf(b, synth_rng_below(r, 2) ? "set a timer for %d minutes" : "start a %d minute timer", a); break;
    default: synth_buf_addf(b, "search %s %s", synth_rng_below(r, 2) ? "for" : "the web for", synth_pick(r, search_terms)); break;
    }
}
// Parses a request into its tool and call; returns -1 when it names none.
static int parse_request(const char *in, const char **tool, SynthBuf *call) {
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    if (n < 2) return -1;
    const char *num[2] = {NULL, NULL};
    int nn = 0;
    for (int i = 0; i < n; i++)
        if (synth_is_number(w[i]) && nn < 2) num[nn++] = w[i];
    int has_times = 0, has_plus = 0, has_timer = 0, has_mail = 0, has_weather = 0;
    for (int i = 0; i < n; i++) {
        has_times |= !strcmp(w[i], "times");
        has_plus |= !strcmp(w[i], "plus");
        has_timer |= !strcmp(w[i], "timer");
        has_mail |= !strcmp(w[i], "email") || !strcmp(w[i], "mail");
        has_weather |= !strcmp(w[i], "weather") || !strcmp(w[i], "raining");
    }
    if (has_weather) *tool = "weather", synth_buf_addf(call, "weather(%s)", w[n - 1]);
    else if (has_timer && nn) *tool = "timer", synth_buf_addf(call, "timer(%s)", num[0]);
    else if ((has_plus || has_times) && nn == 2) *tool = "calculator", synth_buf_addf(call, "calc(%s%c%s)", num[0], has_plus ? '+' : '*', num[1]);
    else if (!strcmp(w[0], "translate") && n == 4) *tool = "translate", synth_buf_addf(call, "translate(%s,%s)", w[1], w[3]);
    else if (has_mail) *tool = "email", synth_buf_addf(call, "email(%s)", !strcmp(w[0], "email") ? w[1] : w[n - 1]);
    else if (!strcmp(w[0], "search")) *tool = "search", synth_buf_addf(call, "search(%s)", w[n - 1]);
    else return -1;
    return 0;
}

// ---- pick_tool
SYNTH_LIST(ph_tool, "Which tool should handle the request?", "Pick the right tool: weather, calculator, translate, email, timer or search.",
           "Route the user request to a tool.", "Choose the best tool for this task.", "Name the tool an assistant should call for the request.",
           "Select one tool from weather, calculator, translate, email, timer, search.");
SYNTH_LIST(dt_tool, "Answer with the tool name only.");
static int so_tool(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    char tmp[SYNTH_FIELD];
    SynthBuf call;
    synth_buf_init(&call, tmp, sizeof tmp);
    const char *tool;
    if (parse_request(in, &tool, &call)) return -1;
    synth_buf_add(b, tool);
    return 0;
}

// ---- tool_call
SYNTH_LIST(ph_call, "Write the tool call for the request.", "Turn the request into a function call with its arguments.",
           "Produce the API call an agent should make.", "Convert the user's ask into a tool invocation.",
           "Output the call, such as weather(city) or timer(minutes).", "What tool call answers the request?");
SYNTH_LIST(dt_call, "Tools: weather(city), calc(expr), translate(word,lang), email(name), timer(minutes), search(term).");
static int so_call(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    const char *tool;
    return parse_request(in, &tool, b);
}

// ---- extract_time
SYNTH_LIST(ph_time, "Extract the time from the request.", "At what time should this happen?", "Pull out the time mentioned.",
           "Return the time expression in the message.", "Find when the reminder is for.", "Output only the time given in the text.");
SYNTH_LIST(time_tasks, "call mom", "buy milk", "take pills", "walk the dog", "pay rent", "water plants");
static int is_time(const char *w) {
    const char *s = w;
    if (!isdigit((unsigned char)*s)) return 0;
    while (isdigit((unsigned char)*s)) s++;
    if (*s == ':') {
        if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2])) return 0;
        s += 3;
    }
    if (!strcmp(s, "am") || !strcmp(s, "pm")) return 1;
    return !*s && strchr(w, ':') != NULL;
}
static void in_time(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    char t[16];
    if (synth_rng_below(r, 2)) snprintf(t, sizeof t, "%d%s", synth_range(r, 1, 12), synth_rng_below(r, 2) ? "am" : "pm");
    else snprintf(t, sizeof t, "%d:%02d", synth_range(r, 0, 23), 5 * synth_range(r, 0, 11));
    const char *task = synth_pick(r, time_tasks);
    switch (synth_rng_below(r, 3)) {
    case 0: synth_buf_addf(b, "remind me to %s at %s", task, t); break;
    case 1: synth_buf_addf(b, "at %s %s", t, task); break;
    default: synth_buf_addf(b, "meeting with %s at %s", synth_pick(r, synth_names), t); break;
    }
}
static int so_time(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    for (int i = 0; i < n; i++)
        if (is_time(w[i])) return synth_buf_add(b, w[i]), 0;
    synth_buf_add(b, "none");
    return 0;
}

// ---- confirm_needed
SYNTH_LIST(ph_conf, "Should the agent ask for confirmation before doing this? Answer confirm or proceed.",
           "Decide if the action is destructive enough to confirm first.", "Output confirm for risky actions and proceed for safe ones.",
           "Does this step need the user's approval?", "Classify the action: confirm (irreversible) or proceed (harmless).",
           "Gate the action: confirm or proceed.");
SYNTH_LIST(dt_conf, "Deleting, paying, wiping or cancelling needs confirmation.");
SYNTH_LIST(conf_risky, "delete", "remove", "erase", "wipe", "drop", "cancel", "pay");
SYNTH_LIST(conf_safe, "open", "read", "list", "show", "check", "view", "find");
SYNTH_LIST(conf_obj, "all files", "the report", "my account", "the database", "old emails", "the photos", "the invoice");
static void in_conf(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    synth_buf_addf(b, "%s %s", synth_pick(r, synth_rng_below(r, 2) ? conf_risky : conf_safe), synth_pick(r, conf_obj));
}
static int so_conf(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), risky = 0;
    for (int i = 0; i < n; i++) risky |= synth_in_list(w[i], conf_risky) >= 0;
    synth_buf_add(b, risky ? "confirm" : "proceed");
    return 0;
}

// ---- order_steps: "2:cook 1:shop" -> "shop cook"
SYNTH_LIST(ph_steps, "Put the steps in order by their numbers.", "Sort the plan steps and list the actions.",
           "Each item is number:action; output the actions in numeric order.", "Arrange the steps from first to last.",
           "Reorder the plan so step 1 comes first.", "List the actions in the sequence given by their step numbers.");
SYNTH_LIST(step_verbs, "shop", "cook", "eat", "wash", "pack", "drive", "call", "pay", "read", "sleep");
static void in_steps(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 7, 2, 4), ord[4] = {1, 2, 3, 4};
    const char *v[4];
    synth_pick_distinct(r, step_verbs, v, n);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)synth_rng_below(r, (uint32_t)(i + 1)), t = ord[i];
        ord[i] = ord[j];
        ord[j] = t;
    }
    for (int i = 0; i < n; i++) synth_buf_addf(b, "%s%d:%s", i ? " " : "", ord[i], v[i]);
}
static int so_steps(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), k = 0;
    for (int step = 1; step <= n; step++)
        for (int i = 0; i < n; i++) {
            const char *colon = strchr(w[i], ':');
            if (!colon || !isdigit((unsigned char)w[i][0])) return -1;
            if (atoi(w[i]) == step) synth_buf_addf(b, "%s%s", k++ ? " " : "", colon + 1);
        }
    return k == n ? 0 : -1;
}

// ---- retry_policy
SYNTH_LIST(ph_retry, "The tool returned this status; what should the agent do next?", "Choose the next action: done, retry, reauth or abort.",
           "React to the API result with done, retry, reauth, or abort.", "Given the tool outcome, decide the follow-up step.",
           "Map the response status to an agent action.", "Decide how to handle the tool result.");
SYNTH_LIST(dt_retry, "2xx means done; 401 and 403 need reauth; 400 and 404 abort; 429, 5xx and timeouts retry.");
SYNTH_LIST(retry_tools, "search", "weather", "payments", "users", "files");
static void in_retry(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    static const int codes[] = {200, 201, 204, 400, 401, 403, 404, 429, 500, 502, 503};
    const char *t = synth_pick(r, retry_tools);
    if (synth_rng_below(r, 8) == 0) synth_buf_addf(b, "%s call timeout", t);
    else if (synth_rng_below(r, 2)) synth_buf_addf(b, "GET /%s -> %d", t, codes[synth_rng_below(r, 11)]);
    else synth_buf_addf(b, "%s returned %d", t, codes[synth_rng_below(r, 11)]);
}
static int so_retry(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), code = -1;
    for (int i = 0; i < n; i++) {
        if (!strcmp(w[i], "timeout")) code = 0;
        else if (synth_is_number(w[i]) && strlen(w[i]) == 3) code = atoi(w[i]);
    }
    if (code < 0) return -1;
    const char *a = code == 0 || code == 429 || code >= 500 ? "retry" : code == 401 || code == 403 ? "reauth"
                    : code >= 200 && code < 300                                                    ? "done"
                                                                                                   : "abort";
    synth_buf_add(b, a);
    return 0;
}

// ---- extract_destination
SYNTH_LIST(ph_dest, "Where does the traveller want to go? Return the destination city.", "Extract the destination from the booking request.",
           "Fill the destination slot.", "Which city is the trip going to?", "Output the city after 'to' that the user is heading for.",
           "Find the arrival city in the request.");
SYNTH_LIST(days, "monday", "friday", "sunday", "tomorrow", "tonight");
static void in_dest(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    const char *c[2];
    synth_pick_distinct(r, synth_cities, c, 2);
    switch (synth_rng_below(r, 4)) {
    case 0: synth_buf_addf(b, "book a flight to %s on %s", c[0], synth_pick(r, days)); break;
    case 1: synth_buf_addf(b, "i want to fly from %s to %s", c[1], c[0]); break;
    case 2: synth_buf_addf(b, "train to %s %s", c[0], synth_pick(r, days)); break;
    default: synth_buf_addf(b, "get me a ticket from %s to %s", c[1], c[0]); break;
    }
}
static int so_dest(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), at = -1;
    for (int i = 0; i + 1 < n; i++)
        if (!strcmp(w[i], "to")) at = i + 1;
    if (at < 0) return -1;
    synth_buf_add(b, w[at]);
    return 0;
}

static const SynthFamily fams[] = {
    {"pick_tool", SYNTH_AREA_AGENT, "Output the tool for the request: weather, calculator, translate, email, timer or search.", ph_tool, dt_tool, NULL, in_request, so_tool},
    {"tool_call", SYNTH_AREA_AGENT, "Output the call: weather(city), calc(a+b or a*b), translate(word,lang), email(name), timer(minutes) or search(term).", ph_call, dt_call, NULL, in_request, so_call},
    {"extract_time", SYNTH_AREA_AGENT, "Output the time expression (like 5pm or 10:30) from the request.", ph_time, no_details, NULL, in_time, so_time},
    {"confirm_needed", SYNTH_AREA_AGENT, "Output confirm if the action deletes, erases, wipes, drops, cancels or pays; else proceed.", ph_conf, dt_conf, NULL, in_conf, so_conf},
    {"order_steps", SYNTH_AREA_AGENT, "Items are number:action. Output the actions sorted by number, space-separated.", ph_steps, no_details, NULL, in_steps, so_steps},
    {"retry_policy", SYNTH_AREA_AGENT, "Output done for 2xx, reauth for 401/403, abort for 400/404, retry for 429/5xx/timeout.", ph_retry, dt_retry, NULL, in_retry, so_retry},
    {"extract_destination", SYNTH_AREA_AGENT, "Output the destination city (the word after the last 'to').", ph_dest, no_details, NULL, in_dest, so_dest},
};
const SynthFamilyTable synth_agent_table = {fams, (int)(sizeof fams / sizeof fams[0])};
