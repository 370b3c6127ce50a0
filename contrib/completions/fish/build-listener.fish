# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_build_listener_global_optspecs
    string join \n config= h/help V/version
end

function __fish_build_listener_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_build_listener_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_build_listener_using_subcommand
    set -l cmd (__fish_build_listener_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c build-listener -n "__fish_build_listener_needs_command" -l config -d 'Configuration file' -r -F
complete -c build-listener -n "__fish_build_listener_needs_command" -s h -l help -d 'Print help'
complete -c build-listener -n "__fish_build_listener_needs_command" -s V -l version -d 'Print version'
complete -c build-listener -n "__fish_build_listener_needs_command" -f -a "check" -d 'Check the configuration, secrets and netrc entry; print a checklist; exit 0 only when every check passes'
complete -c build-listener -n "__fish_build_listener_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c build-listener -n "__fish_build_listener_using_subcommand check" -l config -d 'Configuration file' -r -F
complete -c build-listener -n "__fish_build_listener_using_subcommand check" -l online -d 'Also ask Gerrit and Jenkins one question each'
complete -c build-listener -n "__fish_build_listener_using_subcommand check" -s h -l help -d 'Print help'
complete -c build-listener -n "__fish_build_listener_using_subcommand help; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Check the configuration, secrets and netrc entry; print a checklist; exit 0 only when every check passes'
complete -c build-listener -n "__fish_build_listener_using_subcommand help; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
