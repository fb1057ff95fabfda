#include "cli/commands.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <optional>

#include "cli/client.h"
#include "cli/command_runs.h"
#include "cli/output.h"
#include "util/duration.h"

namespace sendq::cli {
namespace {

struct CommandInfo {
  const char* name;
  const char* summary;
};

// `sendq help` lists them in this order, under these headings.
constexpr CommandInfo kServerCommands[] = {
    {"serve", "run the sendq service (sendq serve --help lists its flags)"},
};
constexpr CommandInfo kMessageCommands[] = {
    {"send", "queue a message: the text as an argument, from --body-file or from stdin"},
    {"get", "show a message; --wait waits for its outcome"},
    {"attempts", "show a message's delivery attempts"},
    {"list", "list messages, newest first, with filters; --all reads every page"},
    {"cancel", "cancel a queued or held message"},
    {"retry", "queue a failed message again"},
    {"tail", "print messages as they are queued or change, until Ctrl-C"},
};
constexpr CommandInfo kOperationCommands[] = {
    {"stats", "messages by status, the oldest queued one's age, upstream and pause state"},
    {"export", "write messages (and their attempts) as JSON lines or CSV"},
    {"backup", "download a consistent copy of the database (admin token)"},
    {"admin", "retry, cancel, pause, resume, pauses, audit (admin token)"},
    {"help", "this text; sendq help COMMAND shows a command's options"},
};
constexpr CommandInfo kAdminCommands[] = {
    {"retry", "queue failed (or canceled) messages that match the filters again"},
    {"cancel", "cancel queued and held messages that match the filters"},
    {"pause", "stop sending, for everything or one sender; messages stay queued"},
    {"resume", "start sending again, for everything or one sender"},
    {"pauses", "show what is paused"},
    {"audit", "show what admins did, newest first"},
};

constexpr char kExitCodes[] =
    "Exit codes:\n"
    "  0  ok\n"
    "  1  any other error (also: --wait ran out before the message was final)\n"
    "  2  usage: unknown command or option, bad or missing value\n"
    "  3  sendq cannot be reached, or answered 5xx\n"
    "  4  the token was refused (401, 403)\n"
    "  5  not found (404)\n"
    "  6  sendq refused the request (400, 409, 413, 422)\n"
    "  7  send --wait, get --wait: the message ended failed, canceled or expired\n";

constexpr char kCommonOptions[] =
    "Common options (every command but serve):\n"
    "  --url URL          where sendq listens [env: SENDQ_URL] (default http://127.0.0.1:8080)\n"
    "  --token-file PATH  read the token (producer or admin) from the file's first line\n"
    "  --token TOKEN      the token [env: SENDQ_TOKEN]; a flag shows in the process list, so\n"
    "                     prefer the variable or --token-file\n"
    "  --json             print JSON: one object, or one line per record for list, tail and\n"
    "                     attempts\n";

constexpr char kFooter[] =
    "Times are shown in local time (TZ). Exit codes: 0 ok, 1 error, 2 usage, 3 sendq "
    "unreachable\nor 5xx, 4 token refused, 5 not found, 6 request refused, 7 the waited-for "
    "message failed\n(sendq help lists them).";

constexpr char kStatusHelp[] =
    "queued, sending, sent, failed, canceled or held (repeat for several)";

std::string Section(const char* title, const CommandInfo* begin, const CommandInfo* end) {
  std::string out = fmt::format("{}:\n", title);
  for (const CommandInfo* c = begin; c != end; ++c) {
    out += fmt::format("  {:<10}  {}\n", c->name, c->summary);
  }
  return out;
}

template <size_t N>
std::vector<std::string> Names(const CommandInfo (&commands)[N]) {
  std::vector<std::string> names;
  for (const CommandInfo& c : commands) names.push_back(c.name);
  return names;
}

template <size_t N>
const char* SummaryOf(const CommandInfo (&commands)[N], const std::string& name) {
  for (const CommandInfo& c : commands) {
    if (name == c.name) return c.summary;
  }
  return "";
}

const char* Summary(const std::string& name) {
  for (const char* s : {SummaryOf(kServerCommands, name), SummaryOf(kMessageCommands, name),
                        SummaryOf(kOperationCommands, name)}) {
    if (*s != '\0') return s;
  }
  return "";
}

bool StartsWithDigit(const std::string& s) { return !s.empty() && s[0] >= '0' && s[0] <= '9'; }

// "--wait" without a number after it means "until the message is final". CLI11 would take
// the next word (the message text, an id) as the number, so it becomes a hidden flag first.
std::vector<std::string> RewriteBareWait(std::vector<std::string> args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i] == "--wait" && (i + 1 == args.size() || !StartsWithDigit(args[i + 1]))) {
      args[i] = "--wait-until-final";
    }
  }
  return args;
}

// "30" (seconds) or a duration such as "2m" or "90s".
std::optional<int64_t> ParseWaitMs(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    if (text.size() > 9) return std::nullopt;
    return std::stoll(text) * 1000;
  }
  Result<DurationMs> parsed = ParseDuration(text);
  if (!parsed.ok()) return std::nullopt;
  return *parsed;
}

CLI::Option* Repeatable(CLI::Option* option) {
  return option->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

// Every command's definition and the variables its options fill. One subcommand is parsed
// per run, so the subcommands share the common options' variables.
class CommandLine {
 public:
  explicit CommandLine(const std::function<std::string()>& serve_help)
      : app_("sendq: a durable outbound message queue for AgentPhone.", "sendq"),
        serve_help_(serve_help) {
    app_.set_help_flag("-h,--help", "show this help and exit");
    app_.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app_.require_subcommand(1);
    app_.get_formatter()->column_width(32);
    Define();
  }

  CLI::App& app() { return app_; }

  // The subcommand `name` (and `sub` of admin), or nullptr.
  CLI::App* Find(const std::string& name, const std::string& sub = "") {
    CLI::App* found = nullptr;
    try {
      found = app_.get_subcommand(name);
      if (!sub.empty()) found = found->get_subcommand(sub);
    } catch (const CLI::Error&) {
      return nullptr;
    }
    return found;
  }

  // Runs what was parsed.
  int Run(const std::map<std::string, std::string>& env) {
    std::vector<CLI::App*> chosen = app_.get_subcommands();
    if (chosen.empty()) return kExitUsage;
    std::string name = chosen[0]->get_name();
    if (name == "admin") {
      std::vector<CLI::App*> sub = chosen[0]->get_subcommands();
      if (sub.empty()) return kExitUsage;
      name += " " + sub[0]->get_name();
    }
    if (name == "serve" || name == "help") return kExitUsage;  // handled before parsing

    WaitOption wait;
    wait.given = wait_until_final_ || !wait_text_.empty();
    if (!wait_text_.empty()) wait.ms = ParseWaitMs(wait_text_);

    Result<std::unique_ptr<ApiClient>> client = ConnectClient(common_, env);
    if (!client.ok()) {
      PrintError(client.status().message());
      return kExitUsage;
    }
    ApiClient& c = **client;
    const bool json = common_.json;
    if (name == "send") {
      send_.wait = wait;
      if (send_body_->count() > 0) send_.body = send_body_text_;
      return RunSend(c, json, send_);
    }
    if (name == "get") {
      get_.wait = wait;
      return RunGet(c, json, get_);
    }
    if (name == "attempts") return RunAttempts(c, json, id_);
    if (name == "list") return RunList(c, json, list_);
    if (name == "cancel" || name == "retry") return RunMessageAction(c, json, name, id_);
    if (name == "tail") return RunTail(c, json, tail_);
    if (name == "stats") return RunStats(c, json, producer_);
    if (name == "export") return RunExport(c, json, export_);
    if (name == "backup") return RunBackup(c, json, backup_);
    if (name == "admin retry") return RunAdminMessages(c, json, "retry", admin_filters_);
    if (name == "admin cancel") return RunAdminMessages(c, json, "cancel", admin_filters_);
    if (name == "admin pause") return RunAdminPause(c, json, "pause", sender_);
    if (name == "admin resume") return RunAdminPause(c, json, "resume", sender_);
    if (name == "admin pauses") return RunAdminPauses(c, json);
    if (name == "admin audit") return RunAdminAudit(c, json, audit_);
    PrintError("no such command: " + name);
    return kExitUsage;
  }

 private:
  CLI::App* Command(const std::string& name, const std::string& footer = "") {
    CLI::App* sub = app_.add_subcommand(name, Summary(name));
    sub->footer(footer.empty() ? kFooter : footer + "\n\n" + kFooter);
    return sub;
  }

  void AddCommon(CLI::App* sub) {
    const std::string group = "Common options";
    sub->add_option("--url", common_.url,
                    fmt::format("where sendq listens [env: SENDQ_URL] (default {})", kDefaultUrl))
        ->type_name("URL")
        ->group(group);
    sub->add_option("--token-file", common_.token_file,
                    "read the token (producer or admin) from the file's first line")
        ->type_name("PATH")
        ->group(group);
    sub->add_option("--token", common_.token,
                    "the token [env: SENDQ_TOKEN] (visible in ps: prefer --token-file)")
        ->type_name("TOKEN")
        ->group(group);
    sub->add_flag("--json", common_.json, "print JSON instead of text")->group(group);
  }

  void AddWait(CLI::App* sub, const char* what) {
    sub->add_option("--wait", wait_text_, what)
        ->type_name("[SECONDS]")
        ->check(CLI::Validator(
            [](std::string& value) -> std::string {
              return ParseWaitMs(value) ? "" : "expected seconds (e.g. 30) or a duration (2m)";
            },
            "", "SECONDS"));
    sub->add_flag("--wait-until-final", wait_until_final_)->group("");
  }

  void AddListFilters(CLI::App* sub, ListFilters& f) {
    Repeatable(sub->add_option("--status", f.status, kStatusHelp)->type_name("STATUS"));
    sub->add_option("--agent-id", f.agent_id, "only messages from this agent_id")->type_name("ID");
    sub->add_option("--to", f.to, "only messages to this number (any format)")->type_name("NUMBER");
    sub->add_option("--provider-message-id", f.provider_message_id,
                    "only the message AgentPhone knows by this msg_ id")
        ->type_name("ID");
    sub->add_option("--ordering-key", f.ordering_key, "only messages in this lane")
        ->type_name("KEY");
    sub->add_option("--priority", f.priority, "only messages of this priority")
        ->type_name("high|normal|bulk")
        ->check(CLI::IsMember({"high", "normal", "bulk"}).description(""));
    sub->add_option("--scheduled", f.scheduled,
                    "true: only queued messages whose send_at is ahead; false: the rest")
        ->type_name("true|false")
        ->check(CLI::IsMember({"true", "false"}).description(""));
    sub->add_option("--created-after", f.created_after,
                    "at or after: RFC 3339, epoch ms, or local YYYY-MM-DD[ HH:MM[:SS]]")
        ->type_name("TIME");
    sub->add_option("--created-before", f.created_before, "created before (same forms)")
        ->type_name("TIME");
    sub->add_option("--producer", f.producer, "only this producer's messages (admin token)")
        ->type_name("NAME");
  }

  void AddAdminFilters(CLI::App* sub, const char* status_help) {
    AdminFilterOptions& f = admin_filters_;
    Repeatable(sub->add_option("--status", f.status, status_help)->type_name("STATUS"));
    sub->add_option("--producer", f.producer, "only this producer's messages")->type_name("NAME");
    sub->add_option("--sender", f.sender,
                    "only messages from this number_id, from_number or agent_id")
        ->type_name("SENDER");
    sub->add_option("--to", f.to, "only messages to this number")->type_name("NUMBER");
    sub->add_option("--error-contains", f.error_contains,
                    "only messages whose last error contains this text")
        ->type_name("TEXT");
    sub->add_option("--created-after", f.created_after,
                    "at or after: RFC 3339, epoch ms, or local YYYY-MM-DD[ HH:MM[:SS]]")
        ->type_name("TIME");
    sub->add_option("--created-before", f.created_before, "created before (same forms)")
        ->type_name("TIME");
    sub->add_flag("--dry-run", f.dry_run, "only count what matches; change nothing");
    AddCommon(sub);
  }

  void Define() {
    // serve and help are handled before parsing; they are here so that the command list and
    // the suggestions know them.
    app_.add_subcommand("serve", Summary("serve"))->allow_extras()->prefix_command();
    app_.add_subcommand("help", Summary("help"))->allow_extras()->prefix_command();

    CLI::App* send = Command(
        "send",
        "The text is the BODY argument, the file of --body-file, or stdin when neither is given\n"
        "and stdin is not a terminal (with --media-url, only BODY '-' reads stdin). Trailing\n"
        "newlines of a file or stdin are dropped. --wait without SECONDS waits until the message\n"
        "is final, however long that takes.\n\n"
        "Examples:\n"
        "  sendq send --to +14155552671 --agent-id agent_123 'Your table is ready'\n"
        "  echo 'Hello' | sendq send --to +14155552671 --number-id num_1 --wait 60");
    send->add_option("--to", send_.to,
                     "recipient: phone number (any format), short code, email or grp_ id")
        ->type_name("NUMBER")
        ->required();
    send->add_option("--agent-id", send_.agent_id, "send as this AgentPhone agent")
        ->type_name("ID");
    send->add_option("--from", send_.from, "send from this number (from_number)")
        ->type_name("NUMBER");
    send->add_option("--number-id", send_.number_id, "send from this AgentPhone number id")
        ->type_name("ID");
    send->add_option("--body-file", send_.body_file, "read the text from this file")
        ->type_name("PATH");
    Repeatable(send->add_option("--media-url", send_.media_urls,
                                "attach the image at this https URL (repeat for up to 20)")
                   ->type_name("URL"));
    send->add_option("--idempotency-key", send_.idempotency_key,
                     "the same key and text again returns the first message, not a new one")
        ->type_name("KEY");
    AddWait(send, "wait (up to SECONDS) for the outcome; exit 7 if failed or canceled");
    send_body_ = send->add_option("body", send_body_text_, "the message text; '-' reads stdin")
                     ->type_name("BODY");
    AddCommon(send);

    CLI::App* get = Command("get");
    get->add_option("id", get_.id, "the message id (sq_...)")->type_name("ID")->required();
    AddWait(get, "wait (up to SECONDS) until it is final; exit 7 if failed or canceled");
    AddCommon(get);

    CLI::App* attempts = Command("attempts");
    attempts->add_option("id", id_, "the message id (sq_...)")->type_name("ID")->required();
    AddCommon(attempts);

    CLI::App* list =
        Command("list", "Example:\n  sendq list --status failed --created-after 2026-11-27 --all");
    AddListFilters(list, list_.filters);
    list->add_option("--limit", list_.limit, "messages per page, 1 to 200 (default 50)")
        ->type_name("N");
    list->add_option("--cursor", list_.cursor, "start at this page (next_cursor of the last one)")
        ->type_name("CURSOR");
    list->add_flag("--all", list_.all, "follow next_cursor to the last page");
    AddCommon(list);

    for (const char* action : {"cancel", "retry"}) {
      CLI::App* sub = Command(action);
      sub->add_option("id", id_, "the message id (sq_...)")->type_name("ID")->required();
      AddCommon(sub);
    }

    CLI::App* tail = Command(
        "tail",
        "Prints one line per new or changed message (time, id, status, recipient, detail), or\n"
        "one JSON record per line with --json, until Ctrl-C (exit 0).");
    tail->add_option("--producer", tail_.producer, "only this producer's messages (admin token)")
        ->type_name("NAME");
    tail->add_option("--after", tail_.after,
                     "start after this cursor of /v1/messages/changes instead of now")
        ->type_name("CURSOR");
    AddCommon(tail);

    CLI::App* stats = Command("stats");
    stats->add_option("--producer", producer_, "only this producer (admin token)")
        ->type_name("NAME");
    AddCommon(stats);

    CLI::App* exp = Command(
        "export",
        "The data streams to the file as it arrives (FILE.partial, renamed when complete);\n"
        "a progress line shows on stderr when it is a terminal.\n\n"
        "Example:\n  sendq export --format csv --status failed --attempts -o failed.csv");
    exp->add_option("--format", export_.format, "jsonl (default) or csv")
        ->type_name("jsonl|csv")
        ->check(CLI::IsMember({"jsonl", "csv"}).description(""));
    exp->add_flag("--attempts", export_.attempts, "include each message's attempts");
    exp->add_option("-o,--output", export_.output, "write to FILE instead of stdout")
        ->type_name("FILE");
    AddListFilters(exp, export_.filters);
    AddCommon(exp);

    CLI::App* backup = Command(
        "backup",
        "The copy streams to FILE.partial, is checked (length, SQLite header), synced, and\n"
        "renamed to FILE. Keep the callback key (<db>.callback-key) with it.");
    backup->add_option("--to", backup_.to, "write the database copy to FILE")
        ->type_name("FILE")
        ->required();
    backup->add_flag("--force", backup_.force, "replace FILE if it exists");
    AddCommon(backup);

    CLI::App* admin = Command("admin");
    admin->require_subcommand(1);
    CLI::App* retry = admin->add_subcommand("retry", SummaryOf(kAdminCommands, "retry"));
    AddAdminFilters(retry, "failed (default) or canceled; repeat for both");
    CLI::App* cancel = admin->add_subcommand("cancel", SummaryOf(kAdminCommands, "cancel"));
    AddAdminFilters(cancel, "queued or held (default: both); repeat for both");
    for (const char* action : {"pause", "resume"}) {
      CLI::App* sub = admin->add_subcommand(action, SummaryOf(kAdminCommands, action));
      sub->add_option("--sender", sender_,
                      "one sender (number_id, from_number or agent_id); default: everything")
          ->type_name("SENDER");
      AddCommon(sub);
    }
    AddCommon(admin->add_subcommand("pauses", SummaryOf(kAdminCommands, "pauses")));
    CLI::App* audit = admin->add_subcommand("audit", SummaryOf(kAdminCommands, "audit"));
    audit->add_option("--limit", audit_.limit, "entries to show")->type_name("N");
    audit->add_option("--cursor", audit_.cursor, "the page after an earlier one's next_cursor")
        ->type_name("CURSOR");
    AddCommon(audit);
    for (CLI::App* sub : admin->get_subcommands([](CLI::App*) { return true; })) {
      sub->footer(kFooter);
    }
  }

  CLI::App app_;
  std::function<std::string()> serve_help_;
  CommonOptions common_;
  SendOptions send_;
  CLI::Option* send_body_ = nullptr;
  std::string send_body_text_;
  GetOptions get_;
  std::string id_;
  ListOptions list_;
  TailOptions tail_;
  std::string producer_;
  ExportOptions export_;
  BackupOptions backup_;
  AdminFilterOptions admin_filters_;
  std::string sender_;
  AuditOptions audit_;
  std::string wait_text_;
  bool wait_until_final_ = false;
};

// "sendq: unknown command 'stat'; did you mean 'stats'?" and the way to the list.
int UnknownCommand(const std::string& typed, const std::vector<std::string>& names,
                   const std::string& where) {
  std::string text = fmt::format("unknown {}command '{}'", where.empty() ? "" : where + " ", typed);
  const std::string suggestion = Suggest(typed, names);
  if (!suggestion.empty()) text += fmt::format("; did you mean '{}'?", suggestion);
  PrintError(text);
  std::fprintf(stderr, "run 'sendq help%s' for the list\n",
               where.empty() ? "" : (" " + where).c_str());
  return kExitUsage;
}

// Prints the help of `command` (and `sub`), or says there is no such command.
int HelpFor(CommandLine& cli, const std::vector<std::string>& words,
            const std::function<std::string()>& serve_help) {
  const std::string& command = words[0];
  if (command == "serve") {
    std::fputs(serve_help().c_str(), stdout);
    return kExitOk;
  }
  if (command == "help") {
    std::fputs(MainHelp().c_str(), stdout);
    return kExitOk;
  }
  CLI::App* app = cli.Find(command);
  if (app == nullptr) return UnknownCommand(command, CommandNames(), "");
  std::string prefix = "sendq";
  if (words.size() > 1 && command == "admin") {
    CLI::App* sub = cli.Find(command, words[1]);
    if (sub == nullptr) return UnknownCommand(words[1], Names(kAdminCommands), "admin");
    prefix += " admin";
    app = sub;
  }
  std::fputs(app->help(prefix).c_str(), stdout);
  return kExitOk;
}

// Names of the options of `app` ("--status", ...), for suggestions.
std::vector<std::string> OptionNames(const CLI::App* app) {
  std::vector<std::string> names;
  for (const CLI::Option* option : app->get_options()) {
    for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
  }
  return names;
}

}  // namespace

std::vector<std::string> CommandNames() {
  std::vector<std::string> names = Names(kServerCommands);
  for (const auto& n : Names(kMessageCommands)) names.push_back(n);
  for (const auto& n : Names(kOperationCommands)) names.push_back(n);
  return names;
}

std::string MainHelp() {
  std::string out =
      "sendq: a durable outbound message queue for AgentPhone.\n\n"
      "Usage: sendq COMMAND [OPTIONS]\n\n";
  out += Section("Server", std::begin(kServerCommands), std::end(kServerCommands)) + "\n";
  out += Section("Messages", std::begin(kMessageCommands), std::end(kMessageCommands)) + "\n";
  out += Section("Operations", std::begin(kOperationCommands), std::end(kOperationCommands)) + "\n";
  out += Section("Admin commands (sendq admin COMMAND)", std::begin(kAdminCommands),
                 std::end(kAdminCommands)) +
         "\n";
  out += kCommonOptions;
  out += "\n";
  out += kExitCodes;
  out +=
      "\nTimes are shown in local time (TZ). 'sendq COMMAND --help' or 'sendq help COMMAND' "
      "shows a\ncommand's options.\n";
  return out;
}

int RunCommand(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
               const std::function<std::string()>& serve_help) {
  if (args.empty()) {
    std::fputs("usage: sendq COMMAND [OPTIONS]   (sendq help lists the commands)\n", stderr);
    return kExitUsage;
  }
  tzset();  // times are shown in the zone TZ names
  const std::string& first = args[0];
  CommandLine cli(serve_help);
  if (first == "help" || first == "-h" || first == "--help") {
    if (args.size() == 1 || first != "help") {
      std::fputs(MainHelp().c_str(), stdout);
      return kExitOk;
    }
    return HelpFor(cli, std::vector<std::string>(args.begin() + 1, args.end()), serve_help);
  }
  if (!first.empty() && first[0] == '-') {
    PrintError(fmt::format("'{}': the command comes first: sendq COMMAND [OPTIONS]", first));
    return kExitUsage;
  }
  if (cli.Find(first) == nullptr) return UnknownCommand(first, CommandNames(), "");
  if (first == "admin") {
    if (args.size() == 1) {
      PrintError("admin needs a command");
      std::fputs(cli.Find("admin")->help("sendq").c_str(), stderr);
      return kExitUsage;
    }
    if (args[1][0] != '-' && cli.Find("admin", args[1]) == nullptr) {
      return UnknownCommand(args[1], Names(kAdminCommands), "admin");
    }
  }

  const std::vector<std::string> rewritten =
      (first == "send" || first == "get") ? RewriteBareWait(args) : args;
  try {
    // CLI11 consumes its argument vector from the back.
    std::vector<std::string> reversed(rewritten.rbegin(), rewritten.rend());
    cli.app().parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::fputs(cli.app().help().c_str(), stdout);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    // The deepest command that was chosen, for the hint.
    std::string where = "sendq";
    const CLI::App* deepest = &cli.app();
    for (const CLI::App* app = &cli.app(); !app->get_subcommands().empty();) {
      app = app->get_subcommands()[0];
      where += " " + app->get_name();
      deepest = app;
    }
    std::string text =
        where == "sendq" ? std::string(e.what()) : fmt::format("{}: {}", where.substr(6), e.what());
    if (auto* extras = dynamic_cast<const CLI::ExtrasError*>(&e); extras != nullptr) {
      for (const std::string& arg : deepest->remaining()) {
        if (arg.rfind("--", 0) != 0) continue;
        const std::string suggestion = Suggest(arg.substr(0, arg.find('=')), OptionNames(deepest));
        if (!suggestion.empty()) text += fmt::format("; did you mean '{}'?", suggestion);
        break;
      }
    }
    PrintError(text);
    std::fprintf(stderr, "run '%s --help' for its options\n", where.c_str());
    return kExitUsage;
  }
  return cli.Run(env);
}

}  // namespace sendq::cli
