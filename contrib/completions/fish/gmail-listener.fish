# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gmail_listener_global_optspecs
    string join \n config= once dry-run h/help V/version
end

function __fish_gmail_listener_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gmail_listener_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gmail_listener_using_subcommand
    set -l cmd (__fish_gmail_listener_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -l config -d 'Configuration file (default: $BIONICBB_CONFIG, else /etc/bionicbb/config.toml)' -r -F
complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -l once -d 'Poll once and exit: 0 when every mail was handled, 1 when a mail hit a passing fault or Gmail could not be listed'
complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -l dry-run -d 'Read and decide, log each decision, change nothing anywhere'
complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -s h -l help -d 'Print help'
complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -s V -l version -d 'Print version'
complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -f -a "check" -d 'Check the configuration, secrets, netrc entry and Gmail credentials; print a checklist; exit 0 only when every check passes'
complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -f -a "auth" -d 'Authorize the Gmail account once, interactively, and cache the token. Reads only the gmail (and log) tables of the configuration'
complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -f -a "parse" -d 'Print what each mail file says, as one JSON object per line (no network)'
complete -c gmail-listener -n "__fish_gmail_listener_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand check" -l config -d 'Configuration file (default: $BIONICBB_CONFIG, else /etc/bionicbb/config.toml)' -r -F
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand check" -l online -d 'Also ask Gerrit, Jenkins and Gmail one question each (and whether each job declares the parameters the bot sends)'
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand check" -s h -l help -d 'Print help'
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand auth" -l config -d 'Configuration file (default: $BIONICBB_CONFIG, else /etc/bionicbb/config.toml)' -r -F
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand auth" -s h -l help -d 'Print help'
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand parse" -l config -d 'Configuration file (default: $BIONICBB_CONFIG, else /etc/bionicbb/config.toml)' -r -F
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand parse" -s h -l help -d 'Print help'
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand help; and not __fish_seen_subcommand_from check auth parse help" -f -a "check" -d 'Check the configuration, secrets, netrc entry and Gmail credentials; print a checklist; exit 0 only when every check passes'
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand help; and not __fish_seen_subcommand_from check auth parse help" -f -a "auth" -d 'Authorize the Gmail account once, interactively, and cache the token. Reads only the gmail (and log) tables of the configuration'
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand help; and not __fish_seen_subcommand_from check auth parse help" -f -a "parse" -d 'Print what each mail file says, as one JSON object per line (no network)'
complete -c gmail-listener -n "__fish_gmail_listener_using_subcommand help; and not __fish_seen_subcommand_from check auth parse help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
